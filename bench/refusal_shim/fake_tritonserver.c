/* A stand-in for libtritonserver: the two calls refusal_log.c wraps, doing nothing. */
#include <stddef.h>
#include <stdint.h>
static int dummy;
void *TRITONSERVER_InferenceRequestNew(void **request, void *server, const char *model,
                                       const int64_t version)
{
  (void)server; (void)model; (void)version;
  *request = &dummy;
  return NULL;
}
void *TRITONSERVER_ServerInferAsync(void *server, void *request, void *trace)
{
  (void)server; (void)request; (void)trace;
  return NULL;
}
