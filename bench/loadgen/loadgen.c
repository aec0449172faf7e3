/*
 * loadgen: an open-loop HTTP/1.1 load generator for latency at a fixed offered rate.
 *
 * Request k is due at start + schedule(k): evenly spaced (uniform, as wrk2 -R) or with
 * exponential gaps (poisson, seeded). A due request goes out on any idle keep-alive connection;
 * when none is idle it waits, and its latency still counts from when it was due, so a stalled
 * server is charged for the requests it held back (no coordinated omission). The next due time
 * is armed on a timerfd, so requests leave at their time to the microsecond, not in bursts at
 * millisecond ticks. One thread, epoll, no pipelining.
 *
 * With --rate 0 it is a closed loop instead, for a server's peak: each connection sends its next
 * request as soon as the answer to the last one arrived (as wrk and autocannon do), for --warmup
 * then --duration seconds; latency counts from the write.
 *
 *   cc -O2 -o loadgen loadgen.c -lm
 *   loadgen --url http://127.0.0.1:8080/v1/check --rate 10000 --duration 10 \
 *           [--warmup 3] [--connections 64] [--bodies FILE] [--arrivals uniform|poisson]
 *           [--seed 1] [--timeout 10] [--quiet]
 *
 * With --bodies, each non-empty line of FILE is a JSON body, sent in turn as a POST; without,
 * requests are GETs. Progress goes to stderr once a second (unless --quiet); the result is one
 * JSON line on stdout. Exit 0 after a run (errors are counted in the JSON), 2 for bad arguments,
 * 1 when the target cannot be reached. Responses must carry Content-Length (no chunked bodies).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 4096
#define RBUF_SIZE 65536
#define TIMER_TAG UINT32_MAX

static void usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "loadgen: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nusage: loadgen --url http://HOST:PORT/PATH --rate N --duration S [--warmup S]"
                  " [--connections C] [--bodies FILE] [--arrivals uniform|poisson] [--seed N]"
                  " [--timeout S] [--quiet]\n");
  exit(2);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* ---------------------------------------------------------------------------------------------
 * Latency histogram in microseconds: exact below 2048 µs, then 1024 sub-buckets per power of
 * two (under 0.1% relative error), up to 2^40 µs.
 */
#define EXACT 2048
#define SUBS 1024
#define OCTAVES 30
typedef struct {
  uint64_t counts[EXACT + OCTAVES * SUBS];
  uint64_t n, max_us;
  double sum_us;
} histogram;

static size_t bucket_of(uint64_t us) {
  if (us < EXACT) return (size_t)us;
  int e = 63 - __builtin_clzll(us) - 10; /* us >> e lies in [1024, 2047] */
  if (e > OCTAVES) return EXACT + OCTAVES * SUBS - 1;
  return EXACT + (size_t)(e - 1) * SUBS + (size_t)((us >> e) - SUBS);
}

/* The largest value that falls in bucket b (a percentile is never reported too low). */
static uint64_t bucket_top(size_t b) {
  if (b < EXACT) return b;
  size_t e = (b - EXACT) / SUBS + 1, sub = (b - EXACT) % SUBS + SUBS;
  return ((uint64_t)(sub + 1) << e) - 1;
}

static void record(histogram *h, uint64_t ns) {
  uint64_t us = ns / 1000;
  h->counts[bucket_of(us)]++;
  h->n++;
  h->sum_us += (double)us;
  if (us > h->max_us) h->max_us = us;
}

static double percentile_ms(const histogram *h, double p) {
  if (h->n == 0) return 0;
  uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->n), seen = 0;
  if (rank == 0) rank = 1;
  for (size_t b = 0; b < sizeof h->counts / sizeof h->counts[0]; b++) {
    seen += h->counts[b];
    if (seen >= rank) {
      uint64_t top = bucket_top(b);
      return (double)(top < h->max_us ? top : h->max_us) / 1000.0;
    }
  }
  return (double)h->max_us / 1000.0;
}

static void print_histogram(const char *name, const histogram *h) {
  printf("\"%s\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f}",
         name, percentile_ms(h, 50), percentile_ms(h, 90), percentile_ms(h, 99),
         percentile_ms(h, 99.9), (double)h->max_us / 1000.0,
         h->n ? h->sum_us / (double)h->n / 1000.0 : 0.0);
}

/* --------------------------------------------------------------------------------------------- */

typedef struct {
  int fd;
  int busy;
  uint64_t seq;       /* request in flight */
  uint64_t due_ns;    /* when it was due (the write, in a closed loop) */
  int measured;       /* sent inside the measured window */
  uint64_t sent_ns;
  size_t wofs;        /* bytes of the request written so far */
  char *rbuf;
  size_t rlen;
} connection;

static struct sockaddr_in target;
static char **requests;
static size_t *request_lens;
static size_t nrequests;
static connection conns[MAX_CONNECTIONS];
static int nconns, ep;
static int idle[MAX_CONNECTIONS], nidle;
static uint64_t reconnects, errors, inflight, status_counts[600], non2xx;
static histogram from_due, from_send, send_lag;

static int open_connection(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&target, sizeof target) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static void watch(int i, uint32_t events, int op) {
  struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)i};
  if (epoll_ctl(ep, op, conns[i].fd, &ev) != 0) {
    perror("loadgen: epoll_ctl");
    exit(1);
  }
}

/* Drops a connection (its request, if any, counts as an error) and opens a new one. */
static void reconnect(int i) {
  connection *c = &conns[i];
  if (c->busy) errors++, inflight--;
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->busy = 0;
  c->rlen = 0;
  c->fd = open_connection();
  if (c->fd < 0) {
    fprintf(stderr, "loadgen: reconnecting to the target failed: %s\n", strerror(errno));
    exit(1);
  }
  reconnects++;
  watch(i, EPOLLIN, EPOLL_CTL_ADD);
  idle[nidle++] = i;
}

/* Writes what is left of connection i's request; false when the connection broke. */
static int flush_request(int i) {
  connection *c = &conns[i];
  size_t r = c->seq % nrequests, len = request_lens[r];
  while (c->wofs < len) {
    ssize_t w = write(c->fd, requests[r] + c->wofs, len - c->wofs);
    if (w > 0) {
      c->wofs += (size_t)w;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      watch(i, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
      return 1;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      return 0;
    }
  }
  return 1;
}

static void send_request(int i, uint64_t seq, uint64_t due_ns, int measured) {
  connection *c = &conns[i];
  c->busy = 1;
  c->seq = seq;
  c->sent_ns = now_ns();
  c->due_ns = due_ns == 0 ? c->sent_ns : due_ns;
  c->measured = measured;
  c->wofs = 0;
  c->rlen = 0;
  if (!flush_request(i)) reconnect(i);
}

/* Bytes of a complete response at the start of the buffer, 0 if incomplete, -1 if unusable. */
static long response_length(const connection *c, int *status, int *closes) {
  const char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
  if (end == NULL) return c->rlen >= RBUF_SIZE ? -1 : 0;
  size_t head = (size_t)(end - c->rbuf) + 4;
  if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.", 7) != 0) return -1;
  *status = atoi(c->rbuf + 9);
  long body = -1;
  *closes = 0;
  for (const char *p = memmem(c->rbuf, head, "\r\n", 2); p != NULL && p < end;
       p = memmem(p + 2, (size_t)(end - p), "\r\n", 2)) {
    const char *line = p + 2;
    if (strncasecmp(line, "content-length:", 15) == 0) body = strtol(line + 15, NULL, 10);
    if (strncasecmp(line, "connection:", 11) == 0 && strncasecmp(line + 11, " close", 6) == 0)
      *closes = 1;
    if (strncasecmp(line, "transfer-encoding:", 18) == 0) return -1;
  }
  if (body < 0 || head + (size_t)body > RBUF_SIZE) return -1;
  return c->rlen >= head + (size_t)body ? (long)(head + (size_t)body) : 0;
}

int main(int argc, char **argv) {
  const char *url = NULL, *bodies_file = NULL, *arrivals = "uniform";
  double rate = 0, duration = 0, warmup = 0, timeout = 10;
  long connections = 64;
  unsigned long long seed = 1;
  int quiet = 0;
  for (int a = 1; a < argc; a++) {
    const char *k = argv[a];
    if (strcmp(k, "--quiet") == 0) {
      quiet = 1;
      continue;
    }
    if (a + 1 >= argc) usage_error("%s needs a value", k);
    const char *v = argv[++a];
    char *rest = NULL;
    if (strcmp(k, "--url") == 0) url = v;
    else if (strcmp(k, "--bodies") == 0) bodies_file = v;
    else if (strcmp(k, "--arrivals") == 0) arrivals = v;
    else if (strcmp(k, "--rate") == 0) rate = strtod(v, &rest);
    else if (strcmp(k, "--duration") == 0) duration = strtod(v, &rest);
    else if (strcmp(k, "--warmup") == 0) warmup = strtod(v, &rest);
    else if (strcmp(k, "--timeout") == 0) timeout = strtod(v, &rest);
    else if (strcmp(k, "--connections") == 0) connections = strtol(v, &rest, 10);
    else if (strcmp(k, "--seed") == 0) seed = strtoull(v, &rest, 10);
    else usage_error("unknown option %s", k);
    if (rest != NULL && (*rest != '\0' || rest == v)) usage_error("%s is not a number", v);
  }
  if (url == NULL) usage_error("%s", "--url is required");
  if (!(rate >= 0 && rate <= 1e6)) usage_error("%s", "--rate must be 0 (closed loop) or in (0, 1000000]");
  int closed = rate == 0;
  if (!(duration > 0 && duration <= 600)) usage_error("%s", "--duration must be in (0, 600] s");
  if (!(warmup >= 0 && warmup <= 600)) usage_error("%s", "--warmup must be in [0, 600] s");
  if (!(timeout > 0 && timeout <= 600)) usage_error("%s", "--timeout must be in (0, 600] s");
  if (connections < 1 || connections > MAX_CONNECTIONS)
    usage_error("%s", "--connections must be in [1, 4096]");
  int poisson = strcmp(arrivals, "poisson") == 0;
  if (!poisson && strcmp(arrivals, "uniform") != 0)
    usage_error("--arrivals must be uniform or poisson, not %s", arrivals);
  if (closed && poisson) usage_error("%s", "--arrivals poisson needs a --rate");

  /* http://A.B.C.D:PORT/PATH (loopback load only: a literal IPv4 address, no DNS). */
  char host[64];
  unsigned port = 0;
  int path_at = 0;
  if (sscanf(url, "http://%63[0-9.]:%u%n", host, &port, &path_at) != 2 || port == 0 ||
      port > 65535 || inet_pton(AF_INET, host, &target.sin_addr) != 1)
    usage_error("--url must be http://IPV4:PORT/PATH, not %s", url);
  const char *path = url[path_at] == '/' ? url + path_at : "/";
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);

  /* Pre-built requests, one per body (or one GET). */
  if (bodies_file != NULL) {
    FILE *f = fopen(bodies_file, "r");
    if (f == NULL) {
      fprintf(stderr, "loadgen: cannot read --bodies %s: %s\n", bodies_file, strerror(errno));
      return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
      while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
      if (n == 0) continue;
      requests = realloc(requests, (nrequests + 1) * sizeof *requests);
      request_lens = realloc(request_lens, (nrequests + 1) * sizeof *request_lens);
      int len = asprintf(&requests[nrequests],
                         "POST %s HTTP/1.1\r\nHost: %s:%u\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zd\r\n\r\n%s",
                         path, host, port, n, line);
      if (len < 0) return 1;
      request_lens[nrequests++] = (size_t)len;
    }
    free(line);
    fclose(f);
    if (nrequests == 0) usage_error("--bodies %s has no non-empty line", bodies_file);
  } else {
    requests = malloc(sizeof *requests);
    request_lens = malloc(sizeof *request_lens);
    int len = asprintf(&requests[0], "GET %s HTTP/1.1\r\nHost: %s:%u\r\n\r\n", path, host, port);
    if (len < 0) return 1;
    request_lens[0] = (size_t)len;
    nrequests = 1;
  }

  /* The schedule: due offsets in ns from the start, warm-up first (none in a closed loop, which
   * sends until the time is up; `total` then only bounds the sequence numbers). */
  uint64_t warm_n = (uint64_t)llround(rate * warmup), total = warm_n + (uint64_t)llround(rate * duration);
  if (closed) warm_n = 0, total = UINT64_MAX;
  else if (total == (uint64_t)warm_n) usage_error("%s", "--rate × --duration is less than one request");
  if (!closed && total > 100000000u) usage_error("%s", "--rate × (--warmup + --duration) is over 100 million requests");
  uint64_t *due = closed ? NULL : malloc(total * sizeof *due);
  if (due == NULL && !closed) {
    fprintf(stderr, "loadgen: no memory for a schedule of %llu requests\n", (unsigned long long)total);
    return 1;
  }
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  double t = 0;
  for (uint64_t k = 0; !closed && k < total; k++) {
    if (poisson) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17; /* xorshift64 */
      double u = ((double)(state >> 11) + 0.5) / 9007199254740992.0;
      t += -log(u) / rate * 1e9;
    } else {
      t = (double)k / rate * 1e9;
    }
    due[k] = (uint64_t)t;
  }

  ep = epoll_create1(0);
  int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  if (ep < 0 || timer < 0) {
    perror("loadgen: epoll/timerfd");
    return 1;
  }
  struct epoll_event tev = {.events = EPOLLIN, .data.u32 = TIMER_TAG};
  epoll_ctl(ep, EPOLL_CTL_ADD, timer, &tev);
  nconns = (int)connections;
  for (int i = 0; i < nconns; i++) {
    conns[i].fd = open_connection();
    if (conns[i].fd < 0) {
      fprintf(stderr, "loadgen: cannot connect to %s:%u: %s\n", host, port, strerror(errno));
      return 1;
    }
    conns[i].rbuf = malloc(RBUF_SIZE);
    watch(i, EPOLLIN, EPOLL_CTL_ADD);
    idle[nidle++] = i;
  }

  uint64_t start = now_ns(), next = 0, done = 0, measured_done = 0, measured_sent = 0;
  uint64_t measure_start = closed ? start + (uint64_t)(warmup * 1e9)
                                  : start + (warm_n < total ? due[warm_n] : 0);
  uint64_t end_ns = start + (uint64_t)((warmup + duration) * 1e9), last_done_ns = start;
  uint64_t next_progress = start + 1000000000u, give_up = 0;
  struct epoll_event events[256];
  for (;;) {
    uint64_t now = now_ns();
    while (closed && nidle > 0 && now < end_ns) {
      int i = idle[--nidle];
      inflight++;
      measured_sent += now >= measure_start;
      send_request(i, next++, 0, now >= measure_start);
    }
    if (closed && now >= end_ns) total = next; /* the time is up: no more requests */
    while (!closed && next < total && nidle > 0 && start + due[next] <= now) {
      int i = idle[--nidle];
      inflight++;
      send_request(i, next, start + due[next], next >= warm_n);
      next++;
    }
    if (next == total && inflight == 0) break;
    if (next == total && give_up == 0) give_up = now + (uint64_t)(timeout * 1e9);
    if (give_up != 0 && now >= give_up) break;
    if (!quiet && now >= next_progress) {
      uint64_t lo = next, hi = closed ? next : total; /* due_now: the first request not yet due */
      while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (start + due[mid] <= now) lo = mid + 1;
        else hi = mid;
      }
      uint64_t due_now = lo;
      fprintf(stderr, "loadgen: %.0f s, sent %llu, answered %llu, waiting for a connection %llu\n",
              (double)(now - start) / 1e9, (unsigned long long)next, (unsigned long long)done,
              (unsigned long long)(due_now - next));
      next_progress += 1000000000u;
    }
    /* Wake for the next due request only when a connection is free to take it. */
    struct itimerspec at = {0};
    if (!closed && next < total && nidle > 0) {
      uint64_t when = start + due[next];
      at.it_value.tv_sec = (time_t)(when / 1000000000u);
      at.it_value.tv_nsec = (long)(when % 1000000000u);
    }
    timerfd_settime(timer, TFD_TIMER_ABSTIME, &at, NULL);
    int n = epoll_wait(ep, events, 256, 100);
    if (n < 0 && errno != EINTR) {
      perror("loadgen: epoll_wait");
      return 1;
    }
    for (int e = 0; e < n; e++) {
      uint32_t tag = events[e].data.u32;
      if (tag == TIMER_TAG) {
        uint64_t expirations;
        if (read(timer, &expirations, sizeof expirations) < 0 && errno != EAGAIN) return 1;
        continue;
      }
      int i = (int)tag;
      connection *c = &conns[i];
      if (events[e].events & EPOLLOUT) {
        watch(i, EPOLLIN, EPOLL_CTL_MOD);
        if (c->busy && !flush_request(i)) {
          reconnect(i);
          continue;
        }
      }
      if (!(events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
      ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      int status = 0, closes = 0;
      long len = r > 0 ? (c->rlen += (size_t)r, response_length(c, &status, &closes)) : -1;
      if (len == 0) continue;
      if (len < 0 || !c->busy || (size_t)len != c->rlen) {
        /* Closed, broken, unparsable or unasked-for bytes: count it and start over. */
        reconnect(i);
        continue;
      }
      uint64_t at_ns = now_ns();
      c->busy = 0;
      c->rlen = 0;
      inflight--;
      done++;
      if (c->measured) {
        record(&from_due, at_ns - c->due_ns);
        record(&from_send, at_ns - c->sent_ns);
        record(&send_lag, c->sent_ns - c->due_ns);
        status_counts[status > 0 && status < 600 ? status : 0]++;
        if (status < 200 || status > 299) non2xx++;
        measured_done++;
        last_done_ns = at_ns;
      }
      if (closes) {
        reconnect(i);
      } else {
        idle[nidle++] = i;
      }
    }
  }

  double window_s = last_done_ns > measure_start ? (double)(last_done_ns - measure_start) / 1e9 : 0;
  printf("{\"rate\":%.3f,\"arrivals\":\"%s\",\"connections\":%d,\"warmup_s\":%.3f,\"duration_s\":%.3f,"
         "\"scheduled\":%llu,\"completed\":%llu,\"achieved_rps\":%.1f,\"non2xx\":%llu,"
         "\"errors\":%llu,\"unfinished\":%llu,\"unsent\":%llu,\"reconnects\":%llu,",
         rate, closed ? "closed" : poisson ? "poisson" : "uniform", nconns, warmup, duration,
         (unsigned long long)(closed ? measured_sent : total - warm_n), (unsigned long long)measured_done,
         window_s > 0 ? (double)measured_done / window_s : 0.0, (unsigned long long)non2xx,
         (unsigned long long)errors, (unsigned long long)inflight,
         (unsigned long long)(total - next), (unsigned long long)reconnects);
  print_histogram("latency_ms", &from_due);
  printf(",");
  print_histogram("service_ms", &from_send);
  printf(",");
  print_histogram("send_lag_ms", &send_lag);
  printf(",\"statuses\":{");
  int first = 1;
  for (int s = 0; s < 600; s++) {
    if (status_counts[s] == 0) continue;
    printf("%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)status_counts[s]);
    first = 0;
  }
  printf("}}\n");
  return 0;
}
