/* ns per served request that the wrappers add: the frontend's two calls, N times. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
void *TRITONSERVER_InferenceRequestNew(void **, void *, const char *, const int64_t);
void *TRITONSERVER_ServerInferAsync(void *, void *, void *);
int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 20000000;
  struct timespec a, b;
  void *request = NULL;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) {
    TRITONSERVER_InferenceRequestNew(&request, NULL, "pipeline", -1);
    TRITONSERVER_ServerInferAsync(NULL, request, NULL);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
  printf("%.2f ns per request (both calls), %ld requests\n", ns, n);
  return 0;
}
