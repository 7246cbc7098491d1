/*
 * floor: the least a Server-Sent Events hub can do per event, as the floor
 * that tidings-bench measures real hubs against (bench/compare.sh).
 *
 *   floor PORT [ADDRESS]          listen on ADDRESS:PORT (default 127.0.0.1;
 *                                 port 0: any free port)
 *
 * Its first line on stderr is "floor: listening on ADDRESS:PORT, ...".
 *
 * One thread, one epoll set, level-triggered:
 *   - GET (any path) makes the connection a subscriber: the response head
 *     (200, text/event-stream, no chunking: the body runs until the close)
 *     is written and the socket joins the subscriber list;
 *   - POST (any path) with a Content-Length body writes "data: BODY\n\n" to
 *     every subscriber with ONE non-blocking send() each and nothing else,
 *     then answers 200 (keep-alive, so the publisher reuses the connection);
 *   - a subscriber that closes (read returns 0) leaves the list.
 * There is no queue, no history, no id, no task, no wake-up: the time an
 * event takes is the kernel's loopback cost of 1 + N sends. A subscriber
 * whose socket does not take the whole event at once (its send buffer is
 * full) is disconnected, since a partial event would corrupt its stream;
 * at the loads measured here that does not happen (the count is printed
 * on exit, and tidings-bench would count the subscriber as dropped).
 * A body holding a line break (it would not be one data line) is refused
 * with 400; a POST without Content-Length with 411; other methods with 405;
 * each with a JSON error body.
 *
 * Why C rather than Rust: the point is to have nothing between the event
 * and the send() calls. In C that is the code below, plain system calls
 * with no runtime or abstraction to argue about; it stays outside the
 * Cargo workspace (so it is not built on macOS, where there is no epoll),
 * needs no unsafe-code exemption against the workspace's `unsafe_code =
 * "deny"`, and bench/fanout.sh compiles it with gcc into a temporary
 * directory at each run (no binary is committed).
 *
 * On SIGTERM or SIGINT it prints what it did on stderr and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* The largest request head accepted. */
#define MAX_HEAD (64 * 1024)
/* The largest publish body accepted. */
#define MAX_BODY (16 * 1024 * 1024)

static const char SUB_HEAD[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream\r\n"
    "Cache-Control: no-cache\r\n"
    "Connection: close\r\n"
    "\r\n";
static const char PUB_OK[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

/* One connection: a request being read, or a subscriber. */
struct conn {
    int fd;
    /* Index in `subs`, or -1 when not a subscriber. */
    long sub;
    /* Request bytes not handled yet (NULL for subscribers). */
    char *buf;
    size_t len, cap;
};

/* Connections by descriptor: the descriptor limit bounds the table. */
static struct conn **conns;
static size_t max_fds;
/* Subscriber descriptors, in the order events are sent. */
static int *subs;
static size_t nsubs;
/* The frame being sent: "data: " BODY "\n\n", reused. */
static char *frame;
static size_t frame_cap;

/* What it did, printed on exit. */
static unsigned long long published, sends, short_sends, gone, subscribed, left;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void close_conn(int epfd, struct conn *c) {
    if (c->sub >= 0) {
        /* Swap-remove from the subscriber list. */
        size_t i = (size_t)c->sub;
        int last = subs[nsubs - 1];
        subs[i] = last;
        conns[last]->sub = (long)i;
        nsubs--;
        left++;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->buf);
    free(c);
}

/* Writes a short answer and reports whether the whole of it went out. */
static int answer(int fd, const char *text, size_t len) {
    return send(fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len;
}

/* Writes an error status with a JSON body; the connection is then closed. */
static void refuse(int fd, const char *status, const char *error) {
    char out[512];
    char body[256];
    int blen = snprintf(body, sizeof body, "{\"error\":\"%s\"}", error);
    int len = snprintf(out, sizeof out,
                       "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                       status, blen, body);
    answer(fd, out, (size_t)len);
}

/* The value of Content-Length in a request head, or -1 when absent or bad. */
static long content_length(const char *head, size_t head_len) {
    static const char name[] = "\r\ncontent-length:";
    const size_t nlen = sizeof name - 1;
    for (size_t i = 0; i + nlen <= head_len; i++) {
        if (strncasecmp(head + i, name, nlen) != 0) continue;
        const char *p = head + i + nlen;
        const char *end = head + head_len;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p >= end || *p < '0' || *p > '9') return -1;
        long value = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            value = value * 10 + (*p - '0');
            if (value > MAX_BODY) return MAX_BODY + 1L;
            p++;
        }
        return value;
    }
    return -1;
}

/* The fan-out: one non-blocking send of the frame to every subscriber. */
static void publish(int epfd, const char *body, size_t len) {
    size_t need = len + 8;
    if (need > frame_cap) {
        frame = realloc(frame, need);
        if (!frame) die("realloc");
        frame_cap = need;
    }
    memcpy(frame, "data: ", 6);
    memcpy(frame + 6, body, len);
    frame[6 + len] = '\n';
    frame[7 + len] = '\n';
    size_t flen = len + 8;
    published++;
    for (size_t i = 0; i < nsubs;) {
        int fd = subs[i];
        ssize_t n = send(fd, frame, flen, MSG_DONTWAIT | MSG_NOSIGNAL);
        sends++;
        if (n != (ssize_t)flen) {
            /* Closed by the subscriber (its close not read yet), or its
             * socket is full. The list is swap-removed: the same index is
             * visited again. */
            if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) gone++;
            else short_sends++;
            close_conn(epfd, conns[fd]);
            continue;
        }
        i++;
    }
}

/* Handles every complete request in the connection's buffer. Returns 0 when
 * the connection must be closed. */
static int handle(int epfd, struct conn *c) {
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) {
            if (c->len > MAX_HEAD) {
                refuse(c->fd, "431 Request Header Fields Too Large", "request head too large");
                return 0;
            }
            return 1;
        }
        size_t head_len = (size_t)(end - c->buf) + 4;
        if (c->len >= 4 && memcmp(c->buf, "GET ", 4) == 0) {
            if (nsubs == max_fds) return 0;
            if (!answer(c->fd, SUB_HEAD, sizeof SUB_HEAD - 1)) return 0;
            subs[nsubs] = c->fd;
            c->sub = (long)nsubs;
            nsubs++;
            subscribed++;
            /* A subscriber has nothing more to say: drop the buffer. */
            free(c->buf);
            c->buf = NULL;
            c->len = c->cap = 0;
            return 1;
        }
        if (c->len >= 5 && memcmp(c->buf, "POST ", 5) == 0) {
            long body_len = content_length(c->buf, head_len - 2);
            if (body_len < 0) {
                refuse(c->fd, "411 Length Required", "a publish needs a Content-Length body");
                return 0;
            }
            if (body_len > MAX_BODY) {
                refuse(c->fd, "413 Content Too Large", "the body is larger than 16 MiB");
                return 0;
            }
            size_t total = head_len + (size_t)body_len;
            if (c->len < total) return 1; /* the rest of the body is coming */
            const char *body = c->buf + head_len;
            if (memchr(body, '\n', (size_t)body_len) || memchr(body, '\r', (size_t)body_len)) {
                refuse(c->fd, "400 Bad Request", "the body must be one line: it is sent as one data line");
                return 0;
            }
            publish(epfd, body, (size_t)body_len);
            if (!answer(c->fd, PUB_OK, sizeof PUB_OK - 1)) return 0;
            memmove(c->buf, c->buf + total, c->len - total);
            c->len -= total;
            continue;
        }
        refuse(c->fd, "405 Method Not Allowed", "GET subscribes, POST publishes");
        return 0;
    }
}

/* Reads what the connection sent. Returns 0 when it must be closed. */
static int on_readable(int epfd, struct conn *c) {
    if (c->sub >= 0) {
        /* A subscriber only ever closes; anything it sends is ignored. */
        char sink[512];
        ssize_t n = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0) return 0;
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        return 1;
    }
    for (;;) {
        if (c->cap - c->len < 4096) {
            size_t cap = c->cap ? c->cap * 2 : 8192;
            char *buf = realloc(c->buf, cap);
            if (!buf) die("realloc");
            c->buf = buf;
            c->cap = cap;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            return 0;
        }
        c->len += (size_t)n;
        if (c->len > MAX_HEAD + MAX_BODY) return 0;
    }
    return handle(epfd, c);
}

static void on_accept(int epfd, int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
            if (errno == EMFILE || errno == ENFILE) return; /* retried on the next event */
            die("accept4");
        }
        if ((size_t)fd >= max_fds) {
            close(fd);
            continue;
        }
        /* Like the hubs measured beside it: small writes go out at once. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) die("calloc");
        c->fd = fd;
        c->sub = -1;
        conns[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: floor PORT [ADDRESS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *address = argc == 3 ? argv[2] : "127.0.0.1";
    if (port < 0 || port > 65535 || (port == 0 && strcmp(argv[1], "0") != 0)) {
        fprintf(stderr, "floor: invalid port %s\n", argv[1]);
        return 2;
    }

    /* As many connections as the hard limit allows. */
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) < 0) die("getrlimit");
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) < 0) die("setrlimit");
    max_fds = lim.rlim_cur == RLIM_INFINITY ? 1048576 : (size_t)lim.rlim_cur;
    conns = calloc(max_fds, sizeof *conns);
    subs = calloc(max_fds, sizeof *subs);
    if (!conns || !subs) die("calloc");

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, address, &addr.sin_addr) != 1) {
        fprintf(stderr, "floor: invalid IPv4 address %s\n", address);
        return 2;
    }
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 65535) < 0) die("listen");
    socklen_t alen = sizeof addr;
    if (getsockname(listener, (struct sockaddr *)&addr, &alen) < 0) die("getsockname");
    port = ntohs(addr.sin_port);

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev) < 0) die("epoll_ctl");
    fprintf(stderr, "floor: listening on %s:%d, up to %zu connections\n", address, port, max_fds);

    struct epoll_event events[1024];
    while (!stopping) {
        int n = epoll_wait(epfd, events, 1024, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                on_accept(epfd, listener);
                continue;
            }
            struct conn *c = conns[fd];
            /* Closed earlier in this batch (a short send in a fan-out). */
            if (!c) continue;
            int keep = 1;
            if (events[i].events & EPOLLERR) keep = 0;
            else if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) keep = on_readable(epfd, c);
            if (!keep) close_conn(epfd, c);
        }
    }
    fprintf(stderr,
            "floor: %llu events published, %llu sends, %llu short sends (disconnected), "
            "%llu to closed subscribers, %llu subscriptions, %llu left, %zu open\n",
            published, sends, short_sends, gone, subscribed, left, nsubs);
    return 0;
}
