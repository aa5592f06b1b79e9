/* nnofi._fast: Socket.send/recv of small messages and send_many/recv_many
 * without cffi's per-call costs. The first attempt runs with the GIL held and
 * NNOFI_DONTWAIT (most sends and many receives complete at once); only a
 * call that must wait lets the GIL go. The core is reached through the
 * function table nnofi._native hands out (nnofi_fast.h). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

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

/* A blocking receive first takes what is already queued, GIL held; a
 * non-blocking one looks at the connections once, as it would anyway. */
static int first_try(long flags)
{
	return (flags & NNOFI_DONTWAIT) ? NNOFI_DONTWAIT : NNOFI_DONTWAIT | NNOFI_QUEUED;
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
	int rc = api->recv(s, (int)flags | first_try(flags), &res);
	if (rc == EAGAIN && !(flags & NNOFI_DONTWAIT)) {
		/* An ofi rendezvous not read yet: its body is read straight
		 * into the bytes object returned (no copy), if it comes next. */
		size_t want = api->rendezvous_waiting(s);
		PyObject *landing = want ? PyBytes_FromStringAndSize(NULL, (Py_ssize_t)want) : NULL;
		if (want && !landing)
			PyErr_Clear(); /* no memory for it now: received as usual */
		int landed = 0;
		Py_BEGIN_ALLOW_THREADS
		rc = landing ? api->recv_landing(s, (int)flags, PyBytes_AS_STRING(landing), want, &res, &landed)
			     : api->recv(s, (int)flags, &res);
		Py_END_ALLOW_THREADS
		if (!rc && landed) {
			api->msg_free(res.msg);
			return landing;
		}
		Py_XDECREF(landing);
	}
	if (rc)
		return PyLong_FromLong(rc);
	PyObject *bytes = PyBytes_FromStringAndSize(res.data, (Py_ssize_t)res.len);
	api->msg_free(res.msg);
	return bytes;
}

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
	{ "init", fast_init, METH_O, "init(address of nnofi_fast_api)" },
	{ "send", (PyCFunction)(void (*)(void))fast_send, METH_FASTCALL, "send(sock, data, flags, keep_min)" },
	{ "recv", (PyCFunction)(void (*)(void))fast_recv, METH_FASTCALL, "recv(sock, flags)" },
	{ "send_many", (PyCFunction)(void (*)(void))fast_send_many, METH_FASTCALL, "send_many(sock, buffers, flags)" },
	{ "recv_many", (PyCFunction)(void (*)(void))fast_recv_many, METH_FASTCALL,
	  "recv_many(sock, max_count, max_bytes, flags)" },
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
