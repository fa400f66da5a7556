/*
 * refusal_log: records every inference request that Triton refuses before a stage runs.
 *
 * Triton 2.51 validates a request (datatype, shape, batch size, missing or unknown inputs)
 * inside TRITONSERVER_ServerInferAsync and, when it refuses it, counts it in no metric and logs
 * it only at --log-verbose=1 (which logs every served request too). This library is preloaded
 * into tritonserver (LD_PRELOAD, set by logging_backend.stack.launcher) and wraps two functions
 * of Triton's C API that the frontends call:
 *
 *   TRITONSERVER_InferenceRequestNew  remembers the model name, per thread (the frontend calls
 *                                     it and ServerInferAsync on the same thread);
 *   TRITONSERVER_ServerInferAsync     when it returns an error, appends one line to
 *                                     $STAGELOG_REFUSAL_LOG.
 *
 * A served request pays one extra call and a copy of the model name (measured: nothing visible
 * in a closed loop); only a refusal does I/O. The line is glog-shaped, its fields separated by
 * tabs (tab, newline, backslash and control bytes escaped as \t \n \\ \xHH):
 *
 *   E1201 13:07:42.123456 <pid> refusal] <model>\t<version>\t<request id>\t<code>\t<message>
 *
 * The collector (logging_backend.collector.triton_watch.RefusalTailer) tails the file into
 * stagelog.server_logs (source 'refusal'). Past STAGELOG_REFUSAL_LOG_MAX_BYTES (default 16 MiB)
 * the file is renamed to <file>.1 (replacing the previous one) and a new one is started.
 *
 * Build: cc -O2 -shared -fPIC -o refusal_log.so refusal_log.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef struct TRITONSERVER_Error TRITONSERVER_Error;
typedef struct TRITONSERVER_Server TRITONSERVER_Server;
typedef struct TRITONSERVER_InferenceRequest TRITONSERVER_InferenceRequest;
typedef struct TRITONSERVER_InferenceTrace TRITONSERVER_InferenceTrace;

typedef TRITONSERVER_Error *(*request_new_fn)(
    TRITONSERVER_InferenceRequest **, TRITONSERVER_Server *, const char *, const int64_t);
typedef TRITONSERVER_Error *(*infer_async_fn)(
    TRITONSERVER_Server *, TRITONSERVER_InferenceRequest *, TRITONSERVER_InferenceTrace *);
typedef TRITONSERVER_Error *(*request_id_fn)(TRITONSERVER_InferenceRequest *, const char **);
typedef const char *(*error_text_fn)(TRITONSERVER_Error *);
typedef void (*error_delete_fn)(TRITONSERVER_Error *);

#define MODEL_CHARS 256
#define ID_BYTES 200      /* an id longer than any valid one (128) is cut here */
#define MESSAGE_BYTES 4096
#define LINE_BYTES 16384
#define DEFAULT_MAX_BYTES (16L * 1024 * 1024)

static request_new_fn real_request_new;
static infer_async_fn real_infer_async;

/* What the thread's last InferenceRequestNew made. initial-exec: a preloaded library is in the
 * static TLS block, so an access is one fs-relative load, not a __tls_get_addr call. */
struct last_request_t {
  TRITONSERVER_InferenceRequest *request;
  int64_t version;
  char model[MODEL_CHARS];
};
static __thread struct last_request_t last __attribute__((tls_model("initial-exec")));

static char log_path[4096];
static long max_bytes = DEFAULT_MAX_BYTES;
static int log_fd = -1;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Only tritonserver needs it: the stubs it starts do not load it again (other entries stay). */
static void drop_self_from_preload(void)
{
  const char *preload = getenv("LD_PRELOAD");
  char kept[8192];
  size_t at = 0;
  if (preload == NULL || strlen(preload) >= sizeof(kept)) {
    return;
  }
  char copy[8192];
  strcpy(copy, preload);
  char *save = NULL;
  for (char *item = strtok_r(copy, ": ", &save); item != NULL; item = strtok_r(NULL, ": ", &save)) {
    const char *base = strrchr(item, '/');
    base = base ? base + 1 : item;
    if (strncmp(base, "refusal_log", 11) == 0) {
      continue;
    }
    size_t n = strlen(item);
    if (at) {
      kept[at++] = ':';
    }
    memcpy(kept + at, item, n);
    at += n;
  }
  kept[at] = '\0';
  if (at) {
    setenv("LD_PRELOAD", kept, 1);
  } else {
    unsetenv("LD_PRELOAD");
  }
}

__attribute__((constructor)) static void refusal_log_init(void)
{
  const char *path = getenv("STAGELOG_REFUSAL_LOG");
  const char *limit = getenv("STAGELOG_REFUSAL_LOG_MAX_BYTES");
  if (path != NULL && strlen(path) < sizeof(log_path)) {
    strcpy(log_path, path);
  }
  if (limit != NULL && atol(limit) > 0) {
    max_bytes = atol(limit);
  }
  drop_self_from_preload();
}

static void *resolve(const char *name)
{
  void *fn = dlsym(RTLD_NEXT, name);
  if (fn == NULL) {
    fprintf(stderr, "refusal_log: %s not found: %s\n", name, dlerror());
    abort();
  }
  return fn;
}

TRITONSERVER_Error *TRITONSERVER_InferenceRequestNew(
    TRITONSERVER_InferenceRequest **request, TRITONSERVER_Server *server,
    const char *model_name, const int64_t model_version)
{
  request_new_fn real = __atomic_load_n(&real_request_new, __ATOMIC_RELAXED);
  if (real == NULL) { /* threads racing here store the same pointer */
    real = (request_new_fn)resolve("TRITONSERVER_InferenceRequestNew");
    __atomic_store_n(&real_request_new, real, __ATOMIC_RELAXED);
  }
  TRITONSERVER_Error *err = real(request, server, model_name, model_version);
  if (err == NULL && request != NULL) {
    struct last_request_t *mine = &last;
    mine->request = *request;
    mine->version = model_version;
    size_t i = 0;
    if (model_name != NULL) {
      for (; i < MODEL_CHARS - 1 && model_name[i] != '\0'; i++) {
        mine->model[i] = model_name[i];
      }
    }
    mine->model[i] = '\0';
  }
  return err;
}

/* Appends src (at most limit bytes of it) to dst at *at, escaped; returns nothing. */
static void put_escaped(char *dst, size_t *at, size_t cap, const char *src, size_t limit)
{
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; src != NULL && src[i] != '\0' && i < limit; i++) {
    unsigned char c = (unsigned char)src[i];
    if (*at + 4 >= cap) {
      return;
    }
    if (c == '\\') {
      dst[(*at)++] = '\\';
      dst[(*at)++] = '\\';
    } else if (c == '\t') {
      dst[(*at)++] = '\\';
      dst[(*at)++] = 't';
    } else if (c == '\n') {
      dst[(*at)++] = '\\';
      dst[(*at)++] = 'n';
    } else if (c < 0x20 || c == 0x7f) {
      dst[(*at)++] = '\\';
      dst[(*at)++] = 'x';
      dst[(*at)++] = hex[c >> 4];
      dst[(*at)++] = hex[c & 15];
    } else {
      dst[(*at)++] = (char)c;
    }
  }
}

static void put(char *dst, size_t *at, size_t cap, const char *src)
{
  size_t n = strlen(src);
  if (*at + n < cap) {
    memcpy(dst + *at, src, n);
    *at += n;
  }
}

/* Opens (or reopens after a rotation) the log; called with log_lock held. */
static int log_file(void)
{
  struct stat st;
  if (log_fd >= 0 && fstat(log_fd, &st) == 0 && st.st_size >= max_bytes) {
    char rotated[sizeof(log_path) + 3];
    snprintf(rotated, sizeof(rotated), "%s.1", log_path);
    rename(log_path, rotated);
    close(log_fd);
    log_fd = -1;
  }
  if (log_fd < 0) {
    log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  }
  return log_fd;
}

static void record(TRITONSERVER_InferenceRequest *request, TRITONSERVER_Error *err)
{
  if (log_path[0] == '\0') {
    return;
  }
  error_text_fn message_of = (error_text_fn)resolve("TRITONSERVER_ErrorMessage");
  error_text_fn code_of = (error_text_fn)resolve("TRITONSERVER_ErrorCodeString");
  request_id_fn id_of = (request_id_fn)resolve("TRITONSERVER_InferenceRequestId");
  const char *id = "";
  TRITONSERVER_Error *no_id = id_of(request, &id);
  if (no_id != NULL || id == NULL) {
    id = ""; /* not worth a second record */
  }
  if (no_id != NULL) {
    ((error_delete_fn)resolve("TRITONSERVER_ErrorDelete"))(no_id);
  }
  const int known = (request == last.request);
  char version[32];
  snprintf(version, sizeof(version), "%lld", known ? (long long)last.version : -1LL);

  struct timeval now;
  struct tm utc;
  gettimeofday(&now, NULL);
  gmtime_r(&now.tv_sec, &utc);
  char line[LINE_BYTES];
  size_t at = (size_t)snprintf(
      line, sizeof(line), "E%02d%02d %02d:%02d:%02d.%06ld %d refusal] ", utc.tm_mon + 1,
      utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, (long)now.tv_usec, (int)getpid());
  put_escaped(line, &at, sizeof(line), known ? last.model : "", MODEL_CHARS);
  put(line, &at, sizeof(line), "\t");
  put(line, &at, sizeof(line), version);
  put(line, &at, sizeof(line), "\t");
  put_escaped(line, &at, sizeof(line), id, ID_BYTES);
  put(line, &at, sizeof(line), "\t");
  put_escaped(line, &at, sizeof(line), code_of(err), 64);
  put(line, &at, sizeof(line), "\t");
  put_escaped(line, &at, sizeof(line), message_of(err), MESSAGE_BYTES);
  line[at++] = '\n';

  pthread_mutex_lock(&log_lock);
  int fd = log_file();
  if (fd >= 0) {
    ssize_t written = write(fd, line, at); /* one write: lines never interleave */
    (void)written;
  }
  pthread_mutex_unlock(&log_lock);
}

TRITONSERVER_Error *TRITONSERVER_ServerInferAsync(
    TRITONSERVER_Server *server, TRITONSERVER_InferenceRequest *request,
    TRITONSERVER_InferenceTrace *trace)
{
  infer_async_fn real = __atomic_load_n(&real_infer_async, __ATOMIC_RELAXED);
  if (real == NULL) {
    real = (infer_async_fn)resolve("TRITONSERVER_ServerInferAsync");
    __atomic_store_n(&real_infer_async, real, __ATOMIC_RELAXED);
  }
  TRITONSERVER_Error *err = real(server, request, trace);
  if (err != NULL) {
    record(request, err);
  }
  return err;
}
