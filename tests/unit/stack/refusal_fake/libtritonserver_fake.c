/* A stand-in for libtritonserver with the calls refusal_log.c makes: every request is refused
 * when FAKE_REFUSE is set (the message has a tab and a newline, to be escaped). Unit tests only. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
struct TRITONSERVER_Error {
  const char *message;
};
static struct TRITONSERVER_Error refused = {"[request id: r-1] unexpected shape\tfor 'RAW'\nend"};
static int request_object;
void *TRITONSERVER_InferenceRequestNew(void **request, void *server, const char *model,
                                       const int64_t version)
{
  (void)server; (void)model; (void)version;
  *request = &request_object;
  return NULL;
}
void *TRITONSERVER_ServerInferAsync(void *server, void *request, void *trace)
{
  (void)server; (void)request; (void)trace;
  return getenv("FAKE_REFUSE") ? &refused : NULL;
}
void *TRITONSERVER_InferenceRequestId(void *request, const char **id)
{
  (void)request;
  *id = getenv("FAKE_ID") ? getenv("FAKE_ID") : "";
  return NULL;
}
const char *TRITONSERVER_ErrorMessage(struct TRITONSERVER_Error *error) { return error->message; }
const char *TRITONSERVER_ErrorCodeString(struct TRITONSERVER_Error *error)
{
  (void)error;
  return "Invalid argument";
}
void TRITONSERVER_ErrorDelete(struct TRITONSERVER_Error *error) { (void)error; }
