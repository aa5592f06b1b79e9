/* nnofi._fast: SocketCore, the base of nnofi.Socket, whose send() and
 * recv() are C methods (as pyzmq's Socket is Cython's): a round trip of
 * small messages pays no Python frame. send_many/recv_many without cffi's
 * per-call costs. The first attempt runs with the GIL held and
 * NNOFI_DONTWAIT (most sends and many receives complete at once); only a
 * call that must wait lets the GIL go. What is rare (lending a buffer,
 * errors) goes back to Python: Socket._send_slow and Socket._check. The
 * core is reached through the function table nnofi._native hands out
 * (nnofi_fast.h). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "nnofi_fast.h"

static const struct nnofi_fast_api *api;

/* nnofi.socket's buffers the core still holds (handle -> buffer), and the
 * function that drops the ones it has let go: called after a send while
 * any are held, as Python's own send path does. */
static PyObject *retained, *reap;

/* init(address of the table, retained dict, reap function) */
static PyObject *fast_init(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (nargs != 3 || !PyDict_Check(args[1]) || !PyCallable_Check(args[2])) {
		PyErr_SetString(PyExc_TypeError, "init(api address, retained dict, reap function)");
		return NULL;
	}
	const struct nnofi_fast_api *a = PyLong_AsVoidPtr(args[0]);
	if (!a && PyErr_Occurred())
		return NULL;
	if (!a || a->version != NNOFI_FAST_API_VERSION) {
		PyErr_SetString(PyExc_ImportError, "nnofi._fast does not match nnofi._native: rebuild nnofi");
		return NULL;
	}
	api = a;
	Py_INCREF(args[1]);
	Py_INCREF(args[2]);
	Py_XSETREF(retained, args[1]);
	Py_XSETREF(reap, args[2]);
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

/* Send data, copied by the core: 0, an errno, or -1: not sent here (no
 * buffer, or a read-only one the caller may lend the core instead). */
static int send_copied(nnofi_sock *s, PyObject *data, int flags)
{
	Py_buffer view = { .obj = NULL };
	if (PyBytes_CheckExact(data)) { /* the common case: no buffer protocol */
		view.buf = PyBytes_AS_STRING(data);
		view.len = PyBytes_GET_SIZE(data);
		view.readonly = 1;
	} else if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) {
		PyErr_Clear();
		return -1;
	}
	int rc = -1;
	if (!view.readonly || view.len < NNOFI_ZERO_COPY_MIN) {
		int retained_by_core;
		rc = api->send(s, view.buf, (size_t)view.len, flags | NNOFI_DONTWAIT, 0, &retained_by_core);
		if (rc == EAGAIN && !(flags & NNOFI_DONTWAIT)) {
			Py_BEGIN_ALLOW_THREADS
			rc = api->send(s, view.buf, (size_t)view.len, flags, 0, &retained_by_core);
			Py_END_ALLOW_THREADS
		}
	}
	if (view.obj)
		PyBuffer_Release(&view);
	return rc;
}

/* A blocking receive first takes what is already queued, GIL held; a
 * non-blocking one looks at the connections once, as it would anyway. */
static int first_try(long flags)
{
	return (flags & NNOFI_DONTWAIT) ? NNOFI_DONTWAIT : NNOFI_DONTWAIT | NNOFI_QUEUED;
}

/* One message as bytes, or NULL: *err is the errno, or 0 with a Python
 * exception set. */
static PyObject *recv_bytes(nnofi_sock *s, int flags, int *err)
{
	nnofi_recv_result res;
	int rc = api->recv(s, flags | first_try(flags), &res);
	if (rc == EAGAIN && !(flags & NNOFI_DONTWAIT)) {
		/* An ofi rendezvous not read yet: its body is read straight
		 * into the bytes object returned (no copy), if it comes next. */
		size_t want = api->rendezvous_waiting(s);
		PyObject *landing = want ? PyBytes_FromStringAndSize(NULL, (Py_ssize_t)want) : NULL;
		if (want && !landing)
			PyErr_Clear(); /* no memory for it now: received as usual */
		int landed = 0;
		Py_BEGIN_ALLOW_THREADS
		rc = landing ? api->recv_landing(s, flags, PyBytes_AS_STRING(landing), want, &res, &landed)
			     : api->recv(s, flags, &res);
		Py_END_ALLOW_THREADS
		if (!rc && landed) {
			api->msg_free(res.msg);
			return landing;
		}
		Py_XDECREF(landing);
	}
	*err = rc;
	if (rc)
		return NULL;
	PyObject *bytes = PyBytes_FromStringAndSize(res.data, (Py_ssize_t)res.len);
	api->msg_free(res.msg);
	return bytes;
}

/* ---- SocketCore: nnofi.Socket's base ------------------------------------ */

typedef struct {
	PyObject_HEAD
	nnofi_sock *sock; /* owned by the Python subclass (Socket._sock) */
} SocketCore;

static nnofi_sock *core_sock(SocketCore *self)
{
	if (!api || !self->sock) {
		PyErr_SetString(PyExc_RuntimeError, "nnofi socket not set up (Socket.__init__ did not run)");
		return NULL;
	}
	return self->sock;
}

/* The Python layer turns an errno into its exception: Socket._check(rc, what). */
static PyObject *raise_errno(SocketCore *self, int rc, const char *what)
{
	PyObject *r = PyObject_CallMethod((PyObject *)self, "_check", "is", rc, what);
	if (r) {
		Py_DECREF(r);
		PyErr_Format(PyExc_SystemError, "%s failed (errno %d) but Socket._check raised nothing", what, rc);
	}
	return NULL;
}

/* Arguments (positional, then keyword) by name; false with TypeError set. */
static bool take_args(const char *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
		      const char *const *names, int npos, int nall, PyObject **out)
{
	if (nargs > npos) {
		PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)", fn, npos, nargs);
		return false;
	}
	for (Py_ssize_t i = 0; i < nargs; i++)
		out[i] = args[i];
	Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
	for (Py_ssize_t k = 0; k < nkw; k++) {
		PyObject *key = PyTuple_GET_ITEM(kwnames, k);
		int i = 0;
		while (i < nall && PyUnicode_CompareWithASCIIString(key, names[i]) != 0)
			i++;
		if (i == nall) {
			PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fn, key);
			return false;
		}
		if (out[i]) {
			PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn, names[i]);
			return false;
		}
		out[i] = args[nargs + k];
	}
	return true;
}

/* A flag argument: absent is `dflt`; -1 with an exception set. */
static int truth(PyObject *o, int dflt)
{
	return o ? PyObject_IsTrue(o) : dflt;
}

static PyObject *core_send(SocketCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "data", "block", "copy" };
	PyObject *a[3] = { NULL, NULL, NULL };
	if (!take_args("send", args, nargs, kwnames, names, 2, 3, a))
		return NULL;
	if (!a[0]) {
		PyErr_SetString(PyExc_TypeError, "send() missing its argument 'data'");
		return NULL;
	}
	int block = truth(a[1], 1), copy = truth(a[2], 1);
	nnofi_sock *s = core_sock(self);
	if (block < 0 || copy < 0 || !s)
		return NULL;
	int flags = block ? 0 : NNOFI_DONTWAIT;
	if (copy) {
		int rc = send_copied(s, a[0], flags);
		if (rc > 0)
			return raise_errno(self, rc, "send");
		if (rc == 0) {
			if (PyDict_GET_SIZE(retained)) {
				PyObject *r = PyObject_CallNoArgs(reap);
				if (!r)
					return NULL;
				Py_DECREF(r);
			}
			Py_RETURN_NONE;
		}
	}
	return PyObject_CallMethod((PyObject *)self, "_send_slow", "OiO", a[0], flags, copy ? Py_True : Py_False);
}

static PyObject *core_recv(SocketCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "block" };
	PyObject *a[1] = { NULL };
	if (!take_args("recv", args, nargs, kwnames, names, 1, 1, a))
		return NULL;
	int block = truth(a[0], 1);
	nnofi_sock *s = core_sock(self);
	if (block < 0 || !s)
		return NULL;
	int err = 0;
	PyObject *got = recv_bytes(s, block ? 0 : NNOFI_DONTWAIT, &err);
	return got || !err ? got : raise_errno(self, err, "recv");
}

/* _attach(address of the nnofi_sock): once, by Socket.__init__ */
static PyObject *core_attach(SocketCore *self, PyObject *arg)
{
	nnofi_sock *s = PyLong_AsVoidPtr(arg);
	if (!s && !PyErr_Occurred())
		PyErr_SetString(PyExc_ValueError, "null socket");
	if (!s)
		return NULL;
	self->sock = s;
	Py_RETURN_NONE;
}

PyDoc_STRVAR(core_send_doc,
	     "send(data, block=True, *, copy=True)\n--\n\n"
	     "Send bytes or any buffer (numpy arrays too). The buffer may be\n"
	     "reused once send returns: tcp and ipc write straight from it;\n"
	     "inproc passes big immutable buffers (bytes) by reference, and ofi\n"
	     "lets the peer read them (rendezvous); a writable one is copied.\n"
	     "Over tcp and ipc a burst of small sends (less than 50 us apart)\n"
	     "is copied and written together, each batch within 50 us, the\n"
	     "burst's last within 1 ms; a send after a receive goes at once.\n\n"
	     "copy=False (as in pyzmq) lends a big writable buffer too, so it is\n"
	     "not copied: the caller promises to leave it unchanged until the\n"
	     "returned Tracker says done (the peer has read it, or the message\n"
	     "was dropped).");

PyDoc_STRVAR(core_recv_doc,
	     "recv(block=True)\n--\n\n"
	     "Receive one message as bytes. Over ofi, a big message whose body\n"
	     "has not been read yet is read straight into the bytes returned.");

static PyMethodDef core_methods[] = {
	{ "send", (PyCFunction)(void (*)(void))core_send, METH_FASTCALL | METH_KEYWORDS, core_send_doc },
	{ "recv", (PyCFunction)(void (*)(void))core_recv, METH_FASTCALL | METH_KEYWORDS, core_recv_doc },
	{ "_attach", (PyCFunction)core_attach, METH_O, "_attach(address of the native socket)" },
	{ NULL, NULL, 0, NULL },
};

static PyTypeObject SocketCoreType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "nnofi._fast.SocketCore",
	.tp_doc = "nnofi.Socket's base: send() and recv() in C.",
	.tp_basicsize = sizeof(SocketCore),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_new = PyType_GenericNew,
	.tp_methods = core_methods,
};

/* The buffer of one item of send_many: its own, or (not contiguous, like
 * a numpy slice) a bytes copy kept in *keep. */
static int item_buffer(PyObject *item, Py_buffer *view, PyObject **keep)
{
	*keep = NULL;
	if (PyObject_GetBuffer(item, view, PyBUF_SIMPLE) == 0)
		return 0;
	PyErr_Clear();
	PyObject *mv = PyMemoryView_FromObject(item);
	if (mv) {
		*keep = PyObject_CallMethod(mv, "tobytes", NULL);
		Py_DECREF(mv);
	}
	if (!*keep || PyObject_GetBuffer(*keep, view, PyBUF_SIMPLE) != 0) {
		Py_CLEAR(*keep);
		PyErr_Format(PyExc_TypeError,
			     "send_many takes buffers (bytes, bytearray, memoryview, numpy arrays), not %.100s",
			     Py_TYPE(item)->tp_name);
		return -1;
	}
	return 0;
}

/* send_many(sock, iterable of buffers, flags) -> (errno or 0, how many went) */
static PyObject *fast_send_many(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (nargs != 3) {
		PyErr_SetString(PyExc_TypeError, "send_many(sock, buffers, flags)");
		return NULL;
	}
	nnofi_sock *s = sock_arg(args[0]);
	long flags = PyLong_AsLong(args[2]);
	if (!s || PyErr_Occurred())
		return NULL;
	PyObject *seq = PySequence_Fast(args[1], "send_many takes an iterable of buffers");
	if (!seq)
		return NULL;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	if (n > INT_MAX) {
		Py_DECREF(seq);
		PyErr_SetString(PyExc_OverflowError, "send_many: too many messages for one call");
		return NULL;
	}
	Py_buffer *views = PyMem_Calloc((size_t)n + 1, sizeof(*views));
	PyObject **keep = PyMem_Calloc((size_t)n + 1, sizeof(*keep));
	const void **bufs = PyMem_Calloc((size_t)n + 1, sizeof(*bufs));
	size_t *lens = PyMem_Calloc((size_t)n + 1, sizeof(*lens));
	Py_ssize_t held = 0;
	PyObject *result = NULL;
	if (!views || !keep || !bufs || !lens) {
		PyErr_NoMemory();
		goto out;
	}
	for (; held < n; held++) {
		if (item_buffer(PySequence_Fast_GET_ITEM(seq, held), &views[held], &keep[held]) != 0)
			goto out;
		bufs[held] = views[held].buf;
		lens[held] = (size_t)views[held].len;
	}
	int rc = 0, sent = 0;
	if (n) {
		Py_BEGIN_ALLOW_THREADS
		rc = api->send_vec(s, bufs, lens, (int)n, (int)flags, &sent);
		Py_END_ALLOW_THREADS
	}
	result = Py_BuildValue("(ii)", rc, sent);
out:
	for (Py_ssize_t i = 0; i < held; i++) {
		PyBuffer_Release(&views[i]);
		Py_XDECREF(keep[i]);
	}
	PyMem_Free(views);
	PyMem_Free(keep);
	PyMem_Free(bufs);
	PyMem_Free(lens);
	Py_DECREF(seq);
	return result;
}

/* recv_many's result array, kept per thread: a fresh one per call cost
 * more than the messages when each call takes few (glibc consolidates its
 * heap on every free of 64 KiB or more: a quarter of a PULL's time). A
 * call made while the thread's array is in use (a finalizer that receives,
 * run by the bytes allocation) gets its own. */
struct results {
	nnofi_recv_result *at;
	int cap;
	bool busy;
};
static pthread_key_t results_key;
static bool results_keyed;
static pthread_once_t results_once = PTHREAD_ONCE_INIT;

static void results_free(void *p)
{
	struct results *r = p;
	free(r->at);
	free(r);
}

static void results_key_make(void)
{
	results_keyed = pthread_key_create(&results_key, results_free) == 0;
}

static struct results *results_take(int n)
{
	pthread_once(&results_once, results_key_make);
	if (!results_keyed)
		return NULL;
	struct results *r = pthread_getspecific(results_key);
	if (!r) {
		if (!(r = calloc(1, sizeof(*r))) || pthread_setspecific(results_key, r)) {
			free(r);
			return NULL;
		}
	}
	if (r->busy)
		return NULL;
	if (r->cap < n) {
		nnofi_recv_result *at = realloc(r->at, (size_t)n * sizeof(*at));
		if (!at)
			return NULL;
		r->at = at;
		r->cap = n;
	}
	r->busy = true;
	return r;
}

/* recv_many(sock, max_count, max_bytes, flags) -> list of bytes, or an errno */
static PyObject *fast_recv_many(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (nargs != 4) {
		PyErr_SetString(PyExc_TypeError, "recv_many(sock, max_count, max_bytes, flags)");
		return NULL;
	}
	nnofi_sock *s = sock_arg(args[0]);
	long max = PyLong_AsLong(args[1]);
	Py_ssize_t max_bytes = PyLong_AsSsize_t(args[2]);
	long flags = PyLong_AsLong(args[3]);
	if (!s || PyErr_Occurred())
		return NULL;
	if (max <= 0 || max > INT_MAX || max_bytes < 0) {
		PyErr_SetString(PyExc_ValueError, "recv_many: max_count must be 1 or more, max_bytes 0 or more");
		return NULL;
	}
	struct results *kept = results_take((int)max);
	nnofi_recv_result *res = kept ? kept->at : PyMem_Malloc((size_t)max * sizeof(*res));
	if (!res)
		return PyErr_NoMemory();
	int got = 0;
	int rc = api->recv_msgs(s, res, (int)max, (size_t)max_bytes, (int)flags | first_try(flags), &got);
	if (rc == EAGAIN && !(flags & NNOFI_DONTWAIT)) {
		Py_BEGIN_ALLOW_THREADS
		rc = api->recv_msgs(s, res, (int)max, (size_t)max_bytes, (int)flags, &got);
		Py_END_ALLOW_THREADS
	}
	PyObject *out = rc ? PyLong_FromLong(rc) : PyList_New(got);
	for (int i = 0; i < got; i++) {
		if (out) {
			PyObject *b = PyBytes_FromStringAndSize(res[i].data, (Py_ssize_t)res[i].len);
			if (b)
				PyList_SET_ITEM(out, i, b);
			else
				Py_CLEAR(out);
		}
		api->msg_free(res[i].msg);
	}
	if (kept)
		kept->busy = false;
	else
		PyMem_Free(res);
	return out;
}

static PyMethodDef methods[] = {
	{ "init", (PyCFunction)(void (*)(void))fast_init, METH_FASTCALL,
	  "init(address of nnofi_fast_api, retained dict, reap function)" },
	{ "send_many", (PyCFunction)(void (*)(void))fast_send_many, METH_FASTCALL, "send_many(sock, buffers, flags)" },
	{ "recv_many", (PyCFunction)(void (*)(void))fast_recv_many, METH_FASTCALL,
	  "recv_many(sock, max_count, max_bytes, flags)" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT, "nnofi._fast", "nnofi.Socket's send/recv in C, and the batch calls.", -1, methods,
	NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fast(void)
{
	if (PyType_Ready(&SocketCoreType) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&module);
	if (!m)
		return NULL;
	Py_INCREF(&SocketCoreType);
	if (PyModule_AddObject(m, "SocketCore", (PyObject *)&SocketCoreType) < 0 ||
	    PyModule_AddIntConstant(m, "ZERO_COPY_MIN", NNOFI_ZERO_COPY_MIN) < 0) {
		Py_DECREF(&SocketCoreType);
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
