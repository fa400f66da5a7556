/* EXPERIMENT (issue 11, bench/results/i11l): the hot part of capture.records.Record in C, to
 * measure what a compiled record API would save on the stubs' serving threads. Never used by
 * the product: exp-crecord.patch swaps it in when STAGELOG_EXP_CRECORD=1.
 *
 * Same attributes and semantics as the Python Record for __enter__, __exit__, input, output and
 * predictions; snapshot, describe and late are the Python functions of capture.records
 * (configure()). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

static PyObject *snapshot_fn, *describe_fn, *late_fn, *ndarray_type;
static PyObject *s_input, *s_output, *s_ok, *s_error, *s_empty, *s_emit, *s_processor, *s_device,
    *s_copy;

typedef struct {
    PyObject_HEAD
    PyObject *logger, *request_id, *gpu_ms, *gpu_mem_bytes, *gpu_pending, *device, *status,
        *error, *tensors, *preds, *data, *last_arr, *last_snap;
    long rows;
    char keep;
    long long ts_ns, t0, c0;
    double wall_ms, cpu_ms;
} CRecord;

static long long now_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int CRecord_init(CRecord *self, PyObject *args, PyObject *kw) {
    PyObject *logger, *rid;
    long rows;
    int keep;
    if (!PyArg_ParseTuple(args, "OOlp", &logger, &rid, &rows, &keep)) return -1;
    Py_INCREF(logger); self->logger = logger;
    Py_INCREF(rid); self->request_id = rid;
    self->rows = rows; self->keep = (char)keep;
    Py_INCREF(Py_None); self->gpu_ms = Py_None;
    Py_INCREF(Py_None); self->gpu_mem_bytes = Py_None;
    Py_INCREF(Py_None); self->gpu_pending = Py_None;
    self->device = PyObject_GetAttr(logger, s_device);
    if (!self->device) return -1;
    Py_INCREF(s_ok); self->status = s_ok;
    Py_INCREF(s_empty); self->error = s_empty;
    self->tensors = PyList_New(0); self->preds = PyList_New(0); self->data = PyList_New(0);
    if (!self->tensors || !self->preds || !self->data) return -1;
    return 0;
}

static void CRecord_dealloc(CRecord *self) {
    Py_XDECREF(self->logger); Py_XDECREF(self->request_id); Py_XDECREF(self->gpu_ms);
    Py_XDECREF(self->gpu_mem_bytes); Py_XDECREF(self->gpu_pending); Py_XDECREF(self->device);
    Py_XDECREF(self->status); Py_XDECREF(self->error); Py_XDECREF(self->tensors);
    Py_XDECREF(self->preds); Py_XDECREF(self->data); Py_XDECREF(self->last_arr);
    Py_XDECREF(self->last_snap);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *snap(PyObject *value) {
    if ((PyObject *)Py_TYPE(value) == ndarray_type) return PyObject_CallMethodNoArgs(value, s_copy);
    return PyObject_CallOneArg(snapshot_fn, value);
}

static PyObject *CRecord_enter(CRecord *self, PyObject *unused) {
    self->ts_ns = now_ns(CLOCK_REALTIME);
    self->c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    self->t0 = now_ns(CLOCK_MONOTONIC);
    Py_INCREF(self);
    return (PyObject *)self;
}

static int to_tuple(PyObject **slot) {
    if (!PyList_CheckExact(*slot)) return 0;
    PyObject *t = PyList_AsTuple(*slot);
    if (!t) return -1;
    Py_SETREF(*slot, t);
    return 0;
}

static PyObject *CRecord_exit(CRecord *self, PyObject *const *args, Py_ssize_t nargs) {
    self->wall_ms = (now_ns(CLOCK_MONOTONIC) - self->t0) / 1e6;
    self->cpu_ms = (now_ns(CLOCK_THREAD_CPUTIME_ID) - self->c0) / 1e6;
    Py_CLEAR(self->last_arr); Py_CLEAR(self->last_snap);
    if (to_tuple(&self->tensors) || to_tuple(&self->preds) || to_tuple(&self->data)) return NULL;
    if (nargs >= 2 && args[1] != Py_None) {
        PyObject *d = PyObject_CallOneArg(describe_fn, args[1]);
        if (!d) return NULL;
        Py_INCREF(s_error); Py_SETREF(self->status, s_error);
        Py_SETREF(self->error, d);
    }
    PyObject *proc = PyObject_GetAttr(self->logger, s_processor);
    if (!proc) return NULL;
    PyObject *r = PyObject_CallMethodOneArg(proc, s_emit, (PyObject *)self);
    Py_DECREF(proc);
    if (!r) return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *add_tensor(CRecord *self, PyObject *direction, PyObject *name, PyObject *array,
                            int is_output) {
    if (!self->keep) Py_RETURN_NONE;
    PyObject *s = snap(array);
    if (!s) return NULL;
    if (!PyList_CheckExact(self->tensors)) {
        Py_DECREF(s);
        return PyObject_CallFunctionObjArgs(late_fn, (PyObject *)self, direction, name, NULL);
    }
    PyObject *t = PyTuple_Pack(3, direction, name, s);
    if (!t || PyList_Append(self->tensors, t)) { Py_XDECREF(t); Py_DECREF(s); return NULL; }
    Py_DECREF(t);
    if (is_output) {
        Py_INCREF(array); Py_XSETREF(self->last_arr, array);
        Py_XSETREF(self->last_snap, s);
    } else {
        Py_DECREF(s);
    }
    Py_RETURN_NONE;
}

static PyObject *CRecord_input(CRecord *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "input(name, array)"); return NULL; }
    return add_tensor(self, s_input, args[0], args[1], 0);
}

static PyObject *CRecord_output(CRecord *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "output(name, array)"); return NULL; }
    return add_tensor(self, s_output, args[0], args[1], 1);
}

static PyObject *CRecord_predictions(CRecord *self, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames) {
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    static const char *names[3] = {"model", "probs", "decisions"};
    PyObject *a[3] = {NULL, NULL, Py_None};
    if (nargs > 3) goto bad;
    for (Py_ssize_t i = 0; i < nargs; i++) a[i] = args[i];
    for (Py_ssize_t k = 0; k < nkw; k++) {
        int found = 0;
        for (int j = 0; j < 3; j++)
            if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), names[j]) == 0) {
                a[j] = args[nargs + k]; found = 1;
            }
        if (!found) goto bad;
    }
    if (!a[0] || !a[1]) goto bad;
    PyObject *model = a[0], *probs = a[1], *dec = a[2], *s, *d;

    if (self->last_arr == probs) { s = self->last_snap; Py_INCREF(s); }
    else if (!(s = snap(probs))) return NULL;
    if (dec == Py_None) { d = Py_None; Py_INCREF(d); }
    else if (!(d = snap(dec))) { Py_DECREF(s); return NULL; }
    if (!PyList_CheckExact(self->preds)) {
        Py_DECREF(s); Py_DECREF(d);
        return PyObject_CallFunctionObjArgs(late_fn, (PyObject *)self, model, model, NULL);
    }
    PyObject *t = PyTuple_Pack(3, model, s, d);
    Py_DECREF(s); Py_DECREF(d);
    if (!t || PyList_Append(self->preds, t)) { Py_XDECREF(t); return NULL; }
    Py_DECREF(t);
    Py_RETURN_NONE;
bad:
    PyErr_SetString(PyExc_TypeError, "predictions(model, probs, decisions=None)");
    return NULL;
}

static PyMethodDef CRecord_methods[] = {
    {"__enter__", (PyCFunction)CRecord_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))CRecord_exit, METH_FASTCALL, NULL},
    {"input", (PyCFunction)(void (*)(void))CRecord_input, METH_FASTCALL, NULL},
    {"output", (PyCFunction)(void (*)(void))CRecord_output, METH_FASTCALL, NULL},
    {"predictions", (PyCFunction)(void (*)(void))CRecord_predictions,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {NULL}};

#define M(n, t) {#n, t, offsetof(CRecord, n), 0, NULL}
static PyMemberDef CRecord_members[] = {
    M(logger, T_OBJECT), M(request_id, T_OBJECT), M(gpu_ms, T_OBJECT),
    M(gpu_mem_bytes, T_OBJECT), M(gpu_pending, T_OBJECT), M(device, T_OBJECT),
    M(status, T_OBJECT), M(error, T_OBJECT), M(tensors, T_OBJECT), M(preds, T_OBJECT),
    M(data, T_OBJECT), M(rows, T_LONG), M(keep, T_BOOL), M(ts_ns, T_LONGLONG),
    M(wall_ms, T_DOUBLE), M(cpu_ms, T_DOUBLE), {NULL}};

static PyTypeObject CRecordType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_crecord.CRecord",
    .tp_basicsize = sizeof(CRecord),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)CRecord_init,
    .tp_dealloc = (destructor)CRecord_dealloc,
    .tp_methods = CRecord_methods,
    .tp_members = CRecord_members,
};

static PyObject *configure(PyObject *mod, PyObject *args) {
    if (!PyArg_ParseTuple(args, "OOOO", &snapshot_fn, &describe_fn, &late_fn, &ndarray_type))
        return NULL;
    Py_INCREF(snapshot_fn); Py_INCREF(describe_fn); Py_INCREF(late_fn); Py_INCREF(ndarray_type);
    Py_RETURN_NONE;
}

static PyMethodDef mod_methods[] = {{"configure", configure, METH_VARARGS, NULL}, {NULL}};
static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_crecord", NULL, -1, mod_methods};

PyMODINIT_FUNC PyInit__crecord(void) {
    if (PyType_Ready(&CRecordType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    s_input = PyUnicode_InternFromString("input");
    s_output = PyUnicode_InternFromString("output");
    s_ok = PyUnicode_InternFromString("ok");
    s_error = PyUnicode_InternFromString("error");
    s_empty = PyUnicode_InternFromString("");
    s_emit = PyUnicode_InternFromString("emit");
    s_processor = PyUnicode_InternFromString("processor");
    s_device = PyUnicode_InternFromString("device");
    s_copy = PyUnicode_InternFromString("copy");
    Py_INCREF(&CRecordType);
    PyModule_AddObject(m, "CRecord", (PyObject *)&CRecordType);
    return m;
}
