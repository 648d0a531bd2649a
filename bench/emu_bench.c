/*
 * emu_bench: throughput figures for kuala-apiserver (run bench/emu_bench.sh,
 * which starts the emulator on a free port and passes it here).
 *
 *   emu_bench PORT [OBJECTS] [WATCHERS]
 *
 * 1. create OBJECTS ConfigMaps (about 300 bytes of JSON each) over one
 *    keep-alive connection, 64 requests pipelined at a time: creates/s;
 * 2. list them all at once, and page through them with limit=500:
 *    time per full list and objects/s;
 * 3. open WATCHERS watches (from the current revision), delete a tenth of
 *    the objects (labelSelector shard=0) with one deletecollection request,
 *    and count the DELETED events every watcher receives: delivered
 *    events/s across watchers.
 *
 * Plain sockets on 127.0.0.1 so the client costs little next to the server.
 * Prints one line per figure; no assertion (this is a benchmark).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    perror("connect");
    exit(1);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      perror("write");
      exit(1);
    }
    p += w;
    n -= (size_t)w;
  }
}

/* Read one HTTP response with Content-Length; returns the body length and
 * keeps leftover bytes in the buffer. */
typedef struct {
  char *data;
  size_t len, cap;
} rbuf_t;

static void rb_fill(int fd, rbuf_t *b)
{
  if (b->cap - b->len < 65536) {
    b->cap = b->cap ? b->cap * 2 : 1 << 20;
    b->data = realloc(b->data, b->cap);
  }
  ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
  if (n <= 0) {
    fprintf(stderr, "connection closed\n");
    exit(1);
  }
  b->len += (size_t)n;
  b->data[b->len] = '\0';
}

static size_t read_response(int fd, rbuf_t *b, int *status)
{
  for (;;) {
    char *end = b->len ? strstr(b->data, "\r\n\r\n") : NULL;
    if (end) {
      size_t hlen = (size_t)(end - b->data) + 4;
      const char *cl = strstr(b->data, "Content-Length: ");
      size_t blen = cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0;
      while (b->len < hlen + blen) {
        rb_fill(fd, b);
      }
      *status = (int)strtol(b->data + 9, NULL, 10);
      memmove(b->data, b->data + hlen + blen, b->len - hlen - blen);
      b->len -= hlen + blen;
      b->data[b->len] = '\0';
      return blen;
    }
    rb_fill(fd, b);
  }
}

static const char *CM = "/api/v1/namespaces/default/configmaps";

static void create_all(int n)
{
  int fd = dial();
  rbuf_t b = {0};
  char body[512], req[1024];
  double t0 = now();
  int sent = 0, done = 0, bad = 0;
  while (done < n) {
    while (sent < n && sent - done < 64) {
      int bl = snprintf(body, sizeof body,
                        "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                        "\"bench-%07d\",\"labels\":{\"app\":\"bench\",\"shard\":\"%d\"}},"
                        "\"data\":{\"key\":\"value-%d\",\"config\":\"replicas=3;image=nginx:1."
                        "25;port=8080;mode=production\"}}",
                        sent, sent % 10, sent);
      int rl = snprintf(req, sizeof req,
                        "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\n\r\n%s",
                        CM, bl, body);
      send_all(fd, req, (size_t)rl);
      sent++;
    }
    int status;
    read_response(fd, &b, &status);
    if (status != 201) {
      bad++;
    }
    done++;
  }
  double dt = now() - t0;
  printf("create: %d ConfigMaps in %.2f s = %.0f creates/s (%d non-201)\n", n, dt, n / dt, bad);
  close(fd);
  free(b.data);
}

static void list_all(int n)
{
  int fd = dial();
  rbuf_t b = {0};
  char req[512];
  int status;
  double best = 1e9;
  size_t bytes = 0;
  for (int i = 0; i < 3; i++) {
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", CM);
    double t0 = now();
    send_all(fd, req, (size_t)rl);
    bytes = read_response(fd, &b, &status);
    double dt = now() - t0;
    if (dt < best) {
      best = dt;
    }
  }
  printf("list: %d objects (%.1f MB) in %.3f s (best of 3) = %.0f objects/s\n", n,
         (double)bytes / 1e6, best, n / best);
  /* Paginated, limit=500, following continue tokens. */
  double t0 = now();
  char cont[2048] = "";
  int pages = 0;
  for (;;) {
    int rl = snprintf(req, sizeof req, "GET %s?limit=500%s%s HTTP/1.1\r\nHost: x\r\n\r\n", CM,
                      cont[0] ? "&continue=" : "", cont);
    send_all(fd, req, (size_t)rl);
    /* Find the continue token in the body before it is consumed. */
    size_t blen;
    for (;;) {
      char *end = b.len ? strstr(b.data, "\r\n\r\n") : NULL;
      if (end) {
        const char *cl = strstr(b.data, "Content-Length: ");
        blen = strtoul(cl + 16, NULL, 10);
        size_t hlen = (size_t)(end - b.data) + 4;
        while (b.len < hlen + blen) {
          rb_fill(fd, &b);
        }
        char *c = strstr(end, "\"continue\":\"");
        cont[0] = '\0';
        if (c && c < b.data + hlen + blen) {
          c += 12;
          char *q = strchr(c, '"');
          size_t l = (size_t)(q - c);
          if (l < sizeof cont) {
            memcpy(cont, c, l);
            cont[l] = '\0';
          }
        }
        memmove(b.data, b.data + hlen + blen, b.len - hlen - blen);
        b.len -= hlen + blen;
        b.data[b.len] = '\0';
        break;
      }
      rb_fill(fd, &b);
    }
    pages++;
    if (!cont[0]) {
      break;
    }
  }
  double dt = now() - t0;
  printf("list: paginated limit=500: %d pages in %.3f s = %.0f objects/s\n", pages, dt, n / dt);
  close(fd);
  free(b.data);
}

static void watch_fanout(int n, int watchers)
{
  int *fds = calloc((size_t)watchers, sizeof *fds);
  long *lines = calloc((size_t)watchers, sizeof *lines);
  char *last = calloc((size_t)watchers, 1);
  char req[512];
  for (int i = 0; i < watchers; i++) {
    fds[i] = dial();
  }
  /* Current revision: list with limit=1. */
  int fd = dial();
  rbuf_t b = {0};
  int rl = snprintf(req, sizeof req, "GET %s?limit=1 HTTP/1.1\r\nHost: x\r\n\r\n", CM);
  send_all(fd, req, (size_t)rl);
  for (;;) {
    char *rv = b.len ? strstr(b.data, "\"resourceVersion\":\"") : NULL;
    if (rv && strchr(rv + 19, '"')) {
      break;
    }
    rb_fill(fd, &b);
  }
  char rvbuf[32];
  char *rv = strstr(b.data, "\"resourceVersion\":\"") + 19;
  size_t rvl = (size_t)(strchr(rv, '"') - rv);
  memcpy(rvbuf, rv, rvl);
  rvbuf[rvl] = '\0';
  /* Drop the rest of that response before reusing the connection. */
  close(fd);
  fd = dial();
  b.len = 0;
  for (int i = 0; i < watchers; i++) {
    rl = snprintf(req, sizeof req,
                  "GET %s?watch=true&resourceVersion=%s&timeoutSeconds=600 HTTP/1.1\r\nHost: "
                  "x\r\n\r\n",
                  CM, rvbuf);
    send_all(fds[i], req, (size_t)rl);
    fcntl(fds[i], F_SETFL, O_NONBLOCK);
  }
  usleep(200000);
  /* One request deletes everything: n DELETED events for every watcher. */
  double t0 = now();
  rl = snprintf(req, sizeof req, "DELETE %s?labelSelector=shard%%3D0 HTTP/1.1\r\nHost: x\r\n\r\n",
                CM);
  send_all(fd, req, (size_t)rl);
  int events = (n + 9) / 10; /* shard=0 is every tenth object */
  long total = 0, want = (long)events * watchers;
  struct pollfd *pfd = calloc((size_t)watchers, sizeof *pfd);
  char buf[1 << 16];
  while (total < want && now() - t0 < 120) {
    for (int i = 0; i < watchers; i++) {
      pfd[i].fd = fds[i];
      pfd[i].events = POLLIN;
    }
    if (poll(pfd, (nfds_t)watchers, 1000) <= 0) {
      continue;
    }
    for (int i = 0; i < watchers; i++) {
      if (!(pfd[i].revents & POLLIN)) {
        continue;
      }
      ssize_t r;
      while ((r = read(fds[i], buf, sizeof buf)) > 0) {
        /* An event ends with "}\n"; the two bytes may straddle reads. */
        for (ssize_t k = 0; k < r; k++) {
          if (buf[k] == '\n' && last[i] == '}') {
            lines[i]++;
            total++;
          }
          last[i] = buf[k];
        }
      }
    }
  }
  double dt = now() - t0;
  printf(
      "watch: %d watchers x %d events = %ld delivered in %.2f s = %.0f events/s fan-out "
      "(one deletecollection of the shard=0 tenth, %.0f source events/s)\n",
      watchers, events, total, dt, total / dt, events / dt);
  for (int i = 0; i < watchers; i++) {
    close(fds[i]);
  }
  close(fd);
  free(fds);
  free(lines);
  free(last);
  free(pfd);
  free(b.data);
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: emu_bench PORT [OBJECTS] [WATCHERS]\n");
    return 2;
  }
  port = (int)strtol(argv[1], NULL, 10);
  int n = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 100000;
  int watchers = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 100;
  create_all(n);
  list_all(n);
  watch_fanout(n, watchers);
  return 0;
}
