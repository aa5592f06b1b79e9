/* nnofi._msgbuf.MsgBuf: exports (address, length) owned by a Python object
 * through the buffer protocol, read-write, without copying. nnofi.Message
 * subclasses it; the owner (a cffi pointer freed by ffi.gc) lives as long
 * as the MsgBuf and every memoryview/numpy array made from it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

typedef struct {
	PyObject_HEAD
	PyObject *owner;
	char *addr;
	Py_ssize_t len;
	Py_ssize_t exports;
} MsgBuf;

static int msgbuf_init(MsgBuf *self, PyObject *args, PyObject *kwds)
{
	static char *kwlist[] = { "owner", "address", "length", NULL };
	PyObject *owner;
	unsigned long long addr;
	Py_ssize_t len;
	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKn", kwlist, &owner, &addr, &len))
		return -1;
	if (len < 0) {
		PyErr_SetString(PyExc_ValueError, "negative length");
		return -1;
	}
	if (self->exports) {
		PyErr_SetString(PyExc_BufferError, "buffer is exported");
		return -1;
	}
	Py_INCREF(owner);
	Py_XSETREF(self->owner, owner);
	self->addr = (char *)(uintptr_t)addr;
	self->len = len;
	return 0;
}

static void msgbuf_dealloc(MsgBuf *self)
{
	PyObject_GC_UnTrack(self);
	Py_CLEAR(self->owner);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static int msgbuf_traverse(MsgBuf *self, visitproc visit, void *arg)
{
	Py_VISIT(self->owner);
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static int msgbuf_clear(MsgBuf *self)
{
	if (self->exports)
		return 0;
	Py_CLEAR(self->owner);
	return 0;
}

static int msgbuf_getbuffer(MsgBuf *self, Py_buffer *view, int flags)
{
	if (!self->owner) {
		PyErr_SetString(PyExc_ValueError, "message is released");
		return -1;
	}
	if (PyBuffer_FillInfo(view, (PyObject *)self, self->addr, self->len, 0, flags) < 0)
		return -1;
	self->exports++;
	return 0;
}

static void msgbuf_releasebuffer(MsgBuf *self, Py_buffer *view)
{
	(void)view;
	self->exports--;
}

static Py_ssize_t msgbuf_length(MsgBuf *self)
{
	return self->len;
}

static PyBufferProcs msgbuf_as_buffer = {
	(getbufferproc)msgbuf_getbuffer,
	(releasebufferproc)msgbuf_releasebuffer,
};

static PySequenceMethods msgbuf_as_sequence = {
	.sq_length = (lenfunc)msgbuf_length,
};

static PyMemberDef msgbuf_members[] = {
	{ "owner", T_OBJECT, offsetof(MsgBuf, owner), READONLY, "object keeping the bytes alive" },
	{ NULL, 0, 0, 0, NULL },
};

static PyTypeObject MsgBufType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "nnofi._msgbuf.MsgBuf",
	.tp_basicsize = sizeof(MsgBuf),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "Zero-copy view of native memory kept alive by an owner object.",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)msgbuf_init,
	.tp_dealloc = (destructor)msgbuf_dealloc,
	.tp_traverse = (traverseproc)msgbuf_traverse,
	.tp_clear = (inquiry)msgbuf_clear,
	.tp_as_buffer = &msgbuf_as_buffer,
	.tp_as_sequence = &msgbuf_as_sequence,
	.tp_members = msgbuf_members,
};

static struct PyModuleDef msgbuf_module = {
	PyModuleDef_HEAD_INIT, "nnofi._msgbuf", "Buffer-protocol view for nnofi messages.", -1, NULL,
	NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__msgbuf(void)
{
	if (PyType_Ready(&MsgBufType) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&msgbuf_module);
	if (!m)
		return NULL;
	Py_INCREF(&MsgBufType);
	if (PyModule_AddObject(m, "MsgBuf", (PyObject *)&MsgBufType) < 0) {
		Py_DECREF(&MsgBufType);
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
