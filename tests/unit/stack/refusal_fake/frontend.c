/* What a Triton frontend does per request: RequestNew, then ServerInferAsync, N times on 4
 * threads; then one ServerInferAsync of a request no RequestNew made. Prints LD_PRELOAD. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
void *TRITONSERVER_InferenceRequestNew(void **, void *, const char *, const int64_t);
void *TRITONSERVER_ServerInferAsync(void *, void *, void *);
static long per_thread;
static const char *model;
static void *work(void *unused)
{
  (void)unused;
  for (long i = 0; i < per_thread; i++) {
    void *request = NULL;
    TRITONSERVER_InferenceRequestNew(&request, NULL, model, 2);
    TRITONSERVER_ServerInferAsync(NULL, request, NULL);
  }
  return NULL;
}
int main(int argc, char **argv)
{
  model = argv[1];
  per_thread = atol(argv[2]);
  pthread_t threads[4];
  for (int t = 0; t < 4; t++) pthread_create(&threads[t], NULL, work, NULL);
  for (int t = 0; t < 4; t++) pthread_join(threads[t], NULL);
  int other;
  TRITONSERVER_ServerInferAsync(NULL, &other, NULL);
  const char *preload = getenv("LD_PRELOAD");
  printf("LD_PRELOAD=%s\n", preload ? preload : "");
  return 0;
}
