/* nnofi._fast: Socket.send and Socket.recv for small messages without
 * cffi's per-call costs. The first attempt runs with the GIL held and
 * NNOFI_DONTWAIT (most sends and many receives complete at once); only a
 * call that must wait lets the GIL go. The core is reached through the
 * function table nnofi._native hands out (nnofi_fast.h). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>

#include "nnofi_fast.h"

static const struct nnofi_fast_api *api;

/* init(address of the table) */
static PyObject *fast_init(PyObject *self, PyObject *arg)
{
	(void)self;
	const struct nnofi_fast_api *a = PyLong_AsVoidPtr(arg);
	if (!a && PyErr_Occurred())
		return NULL;
	if (!a || a->version != NNOFI_FAST_API_VERSION) {
		PyErr_SetString(PyExc_ImportError, "nnofi._fast does not match nnofi._native: rebuild nnofi");
		return NULL;
	}
	api = a;
	Py_RETURN_NONE;
}

static nnofi_sock *sock_arg(PyObject *o)
{
	if (!api) {
		PyErr_SetString(PyExc_RuntimeError, "nnofi._fast.init was not called");
		return NULL;
	}
	nnofi_sock *s = PyLong_AsVoidPtr(o);
	if (!s && !PyErr_Occurred())
		PyErr_SetString(PyExc_ValueError, "null socket");
	return s;
}

/* send(sock, data, flags, keep_min) -> 0, an errno, or -1: not sent here
 * (data is no buffer, or a read-only one of keep_min bytes or more, which
 * the caller may lend the core past the call). */
static PyObject *fast_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (nargs != 4) {
		PyErr_SetString(PyExc_TypeError, "send(sock, data, flags, keep_min)");
		return NULL;
	}
	nnofi_sock *s = sock_arg(args[0]);
	long flags = PyLong_AsLong(args[2]);
	Py_ssize_t keep_min = PyLong_AsSsize_t(args[3]);
	if (!s || PyErr_Occurred())
		return NULL;
	Py_buffer view;
	if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) != 0) {
		PyErr_Clear();
		return PyLong_FromLong(-1);
	}
	if (view.readonly && view.len >= keep_min) {
		PyBuffer_Release(&view);
		return PyLong_FromLong(-1);
	}
	int retained;
	int rc = api->send(s, view.buf, (size_t)view.len, (int)flags | NNOFI_DONTWAIT, 0, &retained);
	if (rc == EAGAIN && !(flags & NNOFI_DONTWAIT)) {
		Py_BEGIN_ALLOW_THREADS
		rc = api->send(s, view.buf, (size_t)view.len, (int)flags, 0, &retained);
		Py_END_ALLOW_THREADS
	}
	PyBuffer_Release(&view);
	return PyLong_FromLong(rc);
}

/* recv(sock, flags) -> bytes, or an errno */
static PyObject *fast_recv(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "recv(sock, flags)");
		return NULL;
	}
	nnofi_sock *s = sock_arg(args[0]);
	long flags = PyLong_AsLong(args[1]);
	if (!s || PyErr_Occurred())
		return NULL;
	nnofi_recv_result res;
	int rc = api->recv(s, (int)flags | NNOFI_DONTWAIT, &res);
	if (rc == EAGAIN && !(flags & NNOFI_DONTWAIT)) {
		Py_BEGIN_ALLOW_THREADS
		rc = api->recv(s, (int)flags, &res);
		Py_END_ALLOW_THREADS
	}
	if (rc)
		return PyLong_FromLong(rc);
	PyObject *bytes = PyBytes_FromStringAndSize(res.data, (Py_ssize_t)res.len);
	api->msg_free(res.msg);
	return bytes;
}

static PyMethodDef methods[] = {
	{ "init", fast_init, METH_O, "init(address of nnofi_fast_api)" },
	{ "send", (PyCFunction)(void (*)(void))fast_send, METH_FASTCALL, "send(sock, data, flags, keep_min)" },
	{ "recv", (PyCFunction)(void (*)(void))fast_recv, METH_FASTCALL, "recv(sock, flags)" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT, "nnofi._fast", "Socket.send/recv for small messages.", -1, methods,
	NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fast(void)
{
	return PyModule_Create(&module);
}
