/*
 * sw-run: streamworker's trusted helper inside every runtime container.
 *
 *   sw-run idle                     the container's main process: waits forever
 *   sw-run noop                     exits 0 at once (the command of a reset-only request)
 *   sw-run run [OPTIONS] -- CMD...  write the delivered files, run CMD once, report
 *   sw-run serve                    the container's main process (PID 1, attached stdin):
 *                                   serve run requests one after another from stdin
 *
 * Why it exists: figures (CPU time, peak memory, exit status) must come from code the
 * submitted program cannot tamper with or imitate.  The helper makes itself
 * non-dumpable (so a same-uid program cannot ptrace it, read its memory or open its
 * file descriptors), gives the program pipes instead of its own stdout/stderr, relays
 * the bytes (counting them, enforcing the output limit) and, after every descendant is
 * dead and reaped, writes one report line tagged with a nonce that only the worker and
 * the helper know.  A program that kills the helper can stop the report, never forge it.
 *
 * OPTIONS (each with a decimal value): --cpu-ms, --wall-ms, --out-bytes, --fsize-bytes,
 * --nofile, and for serve only (`run` accepts and ignores them) --reset 0|1|2 and
 * --snapshot 0|1|2 (see "Test-case isolation" below).
 *
 * Input of `run` on stdin:
 *   "SWRUN1 <nonce> <nfiles> <stdin_bytes>\n"
 *   nfiles x ("<path_len> <content_len>\n" <path> <content>)
 *   <stdin_bytes> bytes handed to CMD as its stdin
 * Files are created relative to the work dir with O_EXCL|O_NOFOLLOW and never through
 * an existing symlink.  Limits: MAX_FILES files, paths of 1..MAX_PATH_LEN bytes,
 * MAX_STDIN bytes of stdin; file contents are bounded by the workspace only (a write
 * error fails the request).  The report line (last bytes on stderr):
 *   "\x1eSWRUN <nonce> exit=.. signal=.. cpu_us=.. wall_us=.. maxrss_kb=.. oom_kills=..
 *    timed_out=.. output_exceeded=.. overflow_stream=1|2|0 out_bytes=.. exec_errno=..
 *    runner_lost=0|1\n"
 *
 * `serve` reads requests until EOF, each "SWSERVE1 <argc>\n", argc x ("<len>\n" <arg>)
 * (the arguments of `run`: OPTIONS -- CMD..., at most MAX_ARGS of at most MAX_ARG_LEN
 * bytes), then exactly the input of `run`.  Everything is sent back on stdout as frames:
 * a 5-byte header (kind, payload length as 32-bit big endian) and the payload.  Kinds:
 * 'O' program stdout, 'E' program stderr (or the helper's "sw-run: <why>\n"), 'R' the
 * report line ("SWRUN <nonce> exit=..\n"), 'Z' end of the request (payload: its nonce),
 * written by PID 1 only after every process of the run is reaped.  Stdout and stderr of
 * a container reach the worker through separate pipes whose relative order Docker does
 * not keep, hence one framed stream.  Why nothing can be forged: the program never holds
 * an fd of the container's stdio (its 0/1/2 are a memfd and pipes, everything else is
 * close-on-exec), the helper is non-dumpable (no /proc/<pid>/fd), and there is no init
 * holding the stdio either: the server is PID 1 (Docker's Init off), which also makes
 * it immune to signals from inside the container (the init of a pid namespace only
 * gets signals it has a handler for, and it installs none; SIG_IGN is not a handler).
 * Payloads are length-prefixed, so program bytes can never end a frame early, and each
 * frame fits in one atomic pipe write (<= PIPE_BUF), so a process killed mid-run never
 * leaves half a frame behind.
 *
 * A serving helper answers every request and never exits on a bad one (it exits, with
 * 0, only when its input ends).  A request it will not run (too many or too long
 * arguments, a bad option, an over-long path, a file that cannot be written, ...) is
 * still read to its end, since its lengths say where that is, and answered with an 'E'
 * frame "sw-run: <why>\n" and the 'Z' frame, without an 'R': the worker treats it as a
 * failed run.  When the framing itself is lost (a header line that does not parse), the
 * answer is 'E' and 'Z' (with the nonce if it was read, else empty) and the helper skips
 * input until the next line starting "SWSERVE1 ".
 *
 * Supervision.  PID 1 forks a runner per request which, exactly as `run` does, forks
 * the program (fresh RUSAGE_CHILDREN, subreaper), relays its output as 'O'/'E' frames
 * and, when every descendant is reaped, hands its report line to PID 1 over a pipe.  The
 * runner has the program's uid, so the program can SIGSTOP or SIGKILL it; PID 1 cannot
 * be touched.  So PID 1 waits for the report with a deadline of its own (the wall limit
 * + SUPERVISE_SLACK_MS, well inside the worker's grace), then kills everything else in
 * the container (kill(-1, SIGKILL) spares the caller) and reaps until no child is left.
 * When the runner delivered no report, PID 1 writes one itself: exit=-1 signal=9 and
 * timed_out=1 if the deadline fired (a stopped runner), or runner_lost=1 if the runner
 * ended without a report (killed); cpu_us is PID 1's RUSAGE_CHILDREN delta, wall_us its
 * clock, maxrss_kb the largest of what it reaped, out_bytes 0 (PID 1 does not see the
 * output).  Every report carries runner_lost (0 in the runner's own).  A runner that
 * gives up by itself (a failing fork or pipe: never the program's doing) sends its reason
 * as an 'E' frame and exits; that request is answered without a report.  PID 1 also
 * watches its input while it waits: when the worker hangs up mid-run (a killed or
 * restarted worker, a stream it gave up on), nobody can read the run's output or send
 * another request, so PID 1 kills everything and exits at once instead of letting the
 * program run on to its limits next to the worker's retry.
 *
 * Test-case isolation (serve).  "--reset 1": before writing the request's files, empty
 * the work dir (the cwd), /tmp, /dev/shm and /dev/mqueue of everything the sandbox uid
 * owns (without following symlinks; directories are made 0700 first, as the program may
 * have left them 000), remove its System V IPC objects, then restore the snapshot if
 * there is one.  "--reset 2" empties the same places and forgets the snapshot instead:
 * the container is then as its next submission must find it (a pooled container that
 * serves another submission; the worker sends it with `sw-run noop` as the command).
 * "--snapshot 1" saves the work dir (directories, regular files with their mode bits,
 * symlinks; fifos and sockets are skipped) right after the request's files are written,
 * "--snapshot 2" after the run (every descendant reaped), e.g. after compiling.  The
 * snapshot lives in PID 1's memory, which no program can read or write (non-dumpable),
 * and replaces the previous one; beyond SNAPSHOT_MAX_ENTRIES entries or
 * SNAPSHOT_MAX_BYTES it is an error (an 'E' frame, no 'R').  So test case 2 starts from exactly the compiled program even if test
 * case 1 overwrote or deleted it.  Reset refuses to work unless the helper is PID 1: on
 * a host it would empty the host's /tmp.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define NONCE_LEN 32
#define MAX_FILES 64
#define MAX_PATH_LEN 255            /* bytes */
#define MAX_ARGS 512                /* 128 program args + the language's command + options */
#define MAX_ARG_LEN 65536           /* bytes per argument */
#define MAX_STDIN (64ULL << 20)     /* the contract's stdin budget with headroom */
#define SUPERVISE_SLACK_MS 1000     /* PID 1's deadline past the wall limit (worker: 5 s) */
#define MAX_WALL_MS 86400000LL      /* a day: keeps deadlines in microseconds far from overflow */
#define SNAPSHOT_MAX_BYTES (256ULL << 20)
#define SNAPSHOT_MAX_ENTRIES 4096
#define SNAPSHOT_MAX_DEPTH 64
#define WIPE_MAX_DEPTH 32           /* deeper directories are moved up (bounded fds/stack) */

static int framed = 0; /* serve mode: output and the report become frames on stdout */
static void write_frame(char kind, const void *data, size_t len);

/* The end of this process, for what cannot happen in practice (a failing fork, pipe,
 * poll...) or in `run` mode, where one exec serves one request anyway.  Serving, the
 * reason also goes to the worker as an 'E' frame (a runner that ends so sends no report,
 * and PID 1 answers its request without one). */
static void fail(const char *msg) {
    char line[256];
    int len = snprintf(line, sizeof line, "sw-run: %s\n", msg);
    if (len < 0) _exit(125);
    if ((size_t)len >= sizeof line) len = sizeof line - 1;
    if (framed) write_frame('E', line, (size_t)len);
    ssize_t ignored = write(2, line, (size_t)len);
    (void)ignored;
    _exit(125);
}

static void die(const char *msg) {
    char with_errno[200];
    snprintf(with_errno, sizeof with_errno, "%s: %s", msg, strerror(errno));
    fail(with_errno);
}

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return; /* the reader went away; keep going to reap and report */
        p += n;
        len -= (size_t)n;
    }
}

/* Like write_all, but a failure is returned (errno set): for files we create. */
static int write_full(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- reading a request ---- */

/* Serve mode: why the current request will not run ("sw-run: ...\n"; first one wins).
 * It is still read to its end (so the stream stays in step) and answered with this. */
static char req_error[200];

/* A request that cannot run: fatal in run mode (one exec, one request), recorded in
 * serve mode.  errnum: an errno value to append, or 0. */
static void request_failed(const char *msg, int errnum) {
    if (!framed) {
        if (errnum) dprintf(2, "sw-run: %s: %s\n", msg, strerror(errnum));
        else dprintf(2, "sw-run: %s\n", msg);
        _exit(125);
    }
    if (req_error[0] == '\0')
        snprintf(req_error, sizeof req_error, "sw-run: %s%s%s\n", msg, errnum ? ": " : "",
                 errnum ? strerror(errnum) : "");
}

/* Stdin ended (or broke) inside a request.  Serving: the worker hung up, there is nobody
 * to answer, so a clean exit. */
static void input_ended(void) {
    if (framed) _exit(0);
    fail("unexpected end of input");
}

static void read_exact(void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(0, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) input_ended();
        p += n;
        len -= (size_t)n;
    }
}

/* One byte, or 0 at the end of input. */
static int read_byte(char *c) {
    for (;;) {
        ssize_t n = read(0, c, 1);
        if (n < 0 && errno == EINTR) continue;
        return n == 1;
    }
}

/* Read one '\n'-terminated line into buf (without the '\n'), byte by byte so nothing
 * after it is consumed.  0 when it does not fit in cap-1 bytes: the framing is lost
 * (serve mode consumes the rest of the line, the next one may start a request). */
static int read_line(char *buf, size_t cap) {
    size_t i = 0;
    for (;;) {
        char c;
        read_exact(&c, 1);
        if (c == '\n') break;
        if (i + 1 >= cap) {
            if (!framed) fail("header line too long");
            while (c != '\n') read_exact(&c, 1);
            return 0;
        }
        buf[i++] = c;
    }
    buf[i] = '\0';
    return 1;
}

/* A strict decimal (digits only, at most 18 of them, so it fits a long long): the end
 * of the number, or NULL. */
static const char *parse_dec(const char *p, unsigned long long *out) {
    unsigned long long v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 18) return NULL;
        v = v * 10 + (unsigned long long)(*p - '0');
        p++;
    }
    if (digits == 0) return NULL;
    *out = v;
    return p;
}

/* Copy exactly len bytes from stdin to out (a file or memfd; -1 discards them).  A
 * write error fails the request (what: its name) and the rest is discarded. */
static void copy_n(int out, unsigned long long len, const char *what) {
    char buf[65536];
    while (len > 0) {
        size_t chunk = len < sizeof buf ? (size_t)len : sizeof buf;
        read_exact(buf, chunk);
        if (out >= 0 && write_full(out, buf, chunk) < 0) {
            request_failed(what, errno);
            out = -1;
        }
        len -= chunk;
    }
}

static int path_is_safe(const char *path) {
    if (path[0] == '\0' || path[0] == '/') return 0;
    const char *p = path;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t seg = slash ? (size_t)(slash - p) : strlen(p);
        if (seg == 0 || (seg == 1 && p[0] == '.') || (seg == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (!slash) break;
        p = slash + 1;
    }
    return 1;
}

/* Create path under dirfd without following any symlink: each directory component is
 * opened with O_NOFOLLOW|O_DIRECTORY, the file with O_CREAT|O_EXCL|O_NOFOLLOW.
 * -1 (after request_failed) when it cannot be created. */
static int open_new_file(int dirfd, char *path) {
    int cur = dup(dirfd);
    if (cur < 0) {
        request_failed("dup", errno);
        return -1;
    }
    char *p = path;
    for (;;) {
        char *slash = strchr(p, '/');
        if (!slash) break;
        *slash = '\0';
        if (mkdirat(cur, p, 0700) < 0 && errno != EEXIST) {
            request_failed("mkdir", errno);
            close(cur);
            return -1;
        }
        int next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            request_failed("open dir", errno);
            close(cur);
            return -1;
        }
        close(cur);
        cur = next;
        *slash = '/';
        p = slash + 1;
    }
    int fd = openat(cur, p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) request_failed("create file", errno);
    close(cur);
    return fd;
}

/* Read nfiles files and create them under dirfd (none once the request failed; their
 * bytes are still read).  -1 when the framing is lost. */
static int receive_files(int dirfd, unsigned long long nfiles) {
    for (unsigned long long i = 0; i < nfiles; i++) {
        char line[64];
        unsigned long long path_len, content_len;
        const char *p;
        if (!read_line(line, sizeof line) || !(p = parse_dec(line, &path_len)) || *p++ != ' ' ||
            !(p = parse_dec(p, &content_len)) || *p != '\0') {
            request_failed("bad file header", 0);
            return -1;
        }
        if (path_len == 0 || path_len > MAX_PATH_LEN) {
            request_failed("file path empty or longer than 255 bytes", 0);
            copy_n(-1, path_len, NULL);
            copy_n(-1, content_len, NULL);
            continue;
        }
        char path[MAX_PATH_LEN + 1];
        read_exact(path, path_len);
        path[path_len] = '\0';
        int fd = -1;
        if (strlen(path) != path_len || !path_is_safe(path)) request_failed("unsafe file path", 0);
        else if (req_error[0] == '\0') fd = open_new_file(dirfd, path);
        copy_n(fd, content_len, "write file");
        if (fd >= 0) close(fd);
    }
    return 0;
}

/* The oom_kill counter of this container's memory cgroup (v2 or v1), or -1. */
static long oom_kills(void) {
    const char *files[] = {"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        FILE *f = fopen(files[i], "re");
        if (!f) continue;
        char key[64];
        long value;
        long found = -1;
        while (fscanf(f, "%63s %ld", key, &value) == 2) {
            if (strcmp(key, "oom_kill") == 0) found = value;
        }
        fclose(f);
        if (found >= 0) return found;
    }
    return -1;
}

/* SIGKILL every direct child of ours, found through /proc (orphans re-parent to us: we
 * are a subreaper).  Not PID 1's way: kill(-1) would hit everything on a host. */
static void kill_children(pid_t self) {
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == self) continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) continue;
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        char state;
        long ppid;
        if (rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == self)
            kill((pid_t)pid, SIGKILL);
    }
    closedir(d);
}

/* Kill and reap until no child is left.  As the container's PID 1: kill(-1, SIGKILL),
 * which hits every process we may signal except ourselves, so a stopped runner, its
 * program and anything they forked all die at once.  Elsewhere (the runner, or a serve
 * that is not PID 1): our children, round after round, as orphans re-parent to us.
 * maxrss (may be NULL): raised to the largest ru_maxrss among the reaped. */
static void kill_all_descendants(long *maxrss) {
    pid_t self = getpid();
    for (int round = 0; round < 10000; round++) {
        if (self == 1) kill(-1, SIGKILL);
        else kill_children(self);
        int status;
        struct rusage ru;
        pid_t r;
        int reaped = 0;
        while ((r = wait4(-1, &status, WNOHANG, &ru)) > 0) {
            reaped = 1;
            if (maxrss && ru.ru_maxrss > *maxrss) *maxrss = ru.ru_maxrss;
        }
        if (r < 0 && errno == ECHILD) return;
        if (!reaped) usleep(1000);
    }
}

static void idle(void) {
    for (;;) pause();
}

/* ---- framed output (serve mode) ---- */

#define FRAME_HEADER 5
#define FRAME_MAX_PAYLOAD (PIPE_BUF - FRAME_HEADER)

/* One frame in one write(): a pipe write of at most PIPE_BUF bytes is atomic, so the
 * stream never holds half a frame, even when the writer is killed. */
static void write_frame(char kind, const void *data, size_t len) {
    char frame[PIPE_BUF];
    if (len > FRAME_MAX_PAYLOAD) len = FRAME_MAX_PAYLOAD;
    frame[0] = kind;
    frame[1] = (char)((len >> 24) & 0xff);
    frame[2] = (char)((len >> 16) & 0xff);
    frame[3] = (char)((len >> 8) & 0xff);
    frame[4] = (char)(len & 0xff);
    memcpy(frame + FRAME_HEADER, data, len);
    write_all(1, frame, FRAME_HEADER + len);
}

/* Send program output of stream k (1 = stdout, 2 = stderr) to the worker. */
static void emit(int k, const char *buf, size_t len) {
    if (!framed) {
        write_all(k, buf, len);
        return;
    }
    while (len > 0) {
        size_t chunk = len < FRAME_MAX_PAYLOAD ? len : FRAME_MAX_PAYLOAD;
        write_frame(k == 1 ? 'O' : 'E', buf, chunk);
        buf += chunk;
        len -= chunk;
    }
}

/* ---- one run ---- */

struct run_opts {
    long long cpu_ms, wall_ms, out_bytes, fsize_bytes, nofile;
    int reset, snapshot; /* serve only: test-case isolation */
    char **cmd;
};

/* Parse "OPTIONS -- CMD..." (argv[0..argc)); a bad one fails the request. */
static void parse_opts(int argc, char **argv, struct run_opts *o) {
    o->cpu_ms = 0;
    o->wall_ms = 10000;
    o->out_bytes = 1 << 20;
    o->fsize_bytes = 0;
    o->nofile = 256;
    o->reset = 0;
    o->snapshot = 0;
    o->cmd = NULL;
    int i = 0;
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (i + 1 >= argc) {
            request_failed("option without value", 0);
            return;
        }
        unsigned long long v;
        const char *end = parse_dec(argv[i + 1], &v);
        if (!end || *end != '\0') {
            request_failed("bad option value", 0);
            return;
        }
        long long value = (long long)v;
        if (strcmp(argv[i], "--cpu-ms") == 0) o->cpu_ms = value;
        else if (strcmp(argv[i], "--wall-ms") == 0 && value > 0 && value <= MAX_WALL_MS)
            o->wall_ms = value;
        else if (strcmp(argv[i], "--out-bytes") == 0) o->out_bytes = value;
        else if (strcmp(argv[i], "--fsize-bytes") == 0) o->fsize_bytes = value;
        else if (strcmp(argv[i], "--nofile") == 0) o->nofile = value;
        else if (strcmp(argv[i], "--reset") == 0 && value <= 2) o->reset = (int)value;
        else if (strcmp(argv[i], "--snapshot") == 0 && value <= 2) o->snapshot = (int)value;
        else {
            request_failed("unknown option or value out of range", 0);
            return;
        }
    }
    if (i + 1 >= argc) {
        request_failed("missing command after --", 0);
        return;
    }
    o->cmd = argv + i + 1;
}

struct run_input {
    char nonce[NONCE_LEN + 1]; /* "" until the run header is read */
    int stdin_fd;              /* -1 when the request will not run */
};

static void reset_sandbox(int workdir, int forget);

/* Read the run's header, create its files (after the reset, if asked for) and take its
 * stdin into a memfd.  -1 when the framing is lost. */
static int read_input(struct run_input *rq, int workdir, int reset /* 0, 1 or 2 */) {
    char header[160];
    unsigned long long nfiles, stdin_len;
    const char *p;
    rq->nonce[0] = '\0';
    rq->stdin_fd = -1;
    if (!read_line(header, sizeof header) || strncmp(header, "SWRUN1 ", 7) != 0 ||
        strcspn(header + 7, " ") != NONCE_LEN) {
        request_failed("bad run header", 0);
        return -1;
    }
    memcpy(rq->nonce, header + 7, NONCE_LEN);
    rq->nonce[NONCE_LEN] = '\0';
    p = header + 7 + NONCE_LEN;
    if (*p++ != ' ' || !(p = parse_dec(p, &nfiles)) || *p++ != ' ' ||
        !(p = parse_dec(p, &stdin_len)) || *p != '\0') {
        request_failed("bad run header", 0);
        return -1;
    }
    if (nfiles > MAX_FILES) request_failed("more than 64 files", 0);
    if (stdin_len > MAX_STDIN) request_failed("stdin larger than 64 MiB", 0);
    if (reset && req_error[0] == '\0') reset_sandbox(workdir, reset == 2);
    if (receive_files(workdir, nfiles) < 0) return -1;
    int fd = -1;
    if (req_error[0] == '\0') {
        fd = memfd_create("stdin", MFD_CLOEXEC);
        if (fd < 0) request_failed("memfd_create", errno);
    }
    copy_n(fd, stdin_len, "write stdin");
    if (fd >= 0 && req_error[0] == '\0' && lseek(fd, 0, SEEK_SET) < 0)
        request_failed("lseek", errno);
    if (fd >= 0 && req_error[0] != '\0') {
        close(fd);
        fd = -1;
    }
    rq->stdin_fd = fd;
    return 0;
}

/* What the helper ignores (PID 1 could not be signalled anyway; the runner should not
 * die of a closed pipe or a terminal's signals).  SIGXFSZ: writing a file beyond the
 * container's fsize limit must fail with EFBIG, not kill PID 1.  SIG_IGN installs no
 * handler, so the init of the pid namespace stays unreachable.  The program gets the
 * defaults back. */
static const int ignored_signals[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGXFSZ};

static void ignore_signals(void) {
    for (size_t i = 0; i < sizeof ignored_signals / sizeof ignored_signals[0]; i++)
        signal(ignored_signals[i], SIG_IGN);
}

/* Run o->cmd once with rq's stdin, relay its output, kill every descendant, report:
 * on stderr (run mode) or, serving, to PID 1 through report_fd.
 * Must run in a process of its own: the figures are this process's RUSAGE_CHILDREN. */
static void execute(const struct run_opts *o, const struct run_input *rq, int report_fd) {
    long long cpu_ms = o->cpu_ms, wall_ms = o->wall_ms, out_bytes = o->out_bytes;
    long long fsize_bytes = o->fsize_bytes, nofile = o->nofile;
    int stdin_fd = rq->stdin_fd;

    long oom_before = oom_kills();
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) die("PR_SET_CHILD_SUBREAPER");
    int out_pipe[2], err_pipe[2], exec_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 ||
        pipe2(exec_pipe, O_CLOEXEC) < 0)
        die("pipe");

    int64_t start = now_us();
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        setpgid(0, 0);
        for (size_t i = 0; i < sizeof ignored_signals / sizeof ignored_signals[0]; i++)
            signal(ignored_signals[i], SIG_DFL);
        /* 0, 1 and 2 replaced: the program never holds our stdio (the container's, in
         * serve mode). Nothing else of ours is inherited: fds >= 3 are all O_CLOEXEC. */
        if (dup2(stdin_fd, 0) < 0 || dup2(out_pipe[1], 1) < 0 || dup2(err_pipe[1], 2) < 0)
            _exit(125);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = 0;
        setrlimit(RLIMIT_CORE, &rl);
        if (cpu_ms > 0) {
            rl.rlim_cur = (rlim_t)((cpu_ms + 999) / 1000);
            rl.rlim_max = rl.rlim_cur + 1;
            setrlimit(RLIMIT_CPU, &rl);
        }
        if (fsize_bytes > 0) {
            rl.rlim_cur = rl.rlim_max = (rlim_t)fsize_bytes;
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        rl.rlim_cur = rl.rlim_max = (rlim_t)nofile;
        setrlimit(RLIMIT_NOFILE, &rl);
        execvp(o->cmd[0], o->cmd);
        int err = errno;
        ssize_t ignored = write(exec_pipe[1], &err, sizeof err);
        (void)ignored;
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    close(exec_pipe[1]);
    close(stdin_fd);
    int exec_errno = 0;
    if (read(exec_pipe[0], &exec_errno, sizeof exec_errno) != sizeof exec_errno) exec_errno = 0;
    close(exec_pipe[0]);

    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    int64_t deadline = start + wall_ms * 1000;
    long long relayed = 0;
    int timed_out = 0, output_exceeded = 0, overflow_stream = 0, child_done = 0, status = 0;
    struct rusage child_ru;
    memset(&child_ru, 0, sizeof child_ru);
    int fds_open = 2;
    struct pollfd pfd[3] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}, {pidfd, POLLIN, 0}};
    char buf[65536];

    while (fds_open > 0 || !child_done) {
        int64_t left_us = deadline - now_us();
        if (left_us <= 0 && !child_done) {
            timed_out = 1;
            kill(child, SIGKILL);
            /* Reap the main process first so its status is ours, then the rest. */
            wait4(child, &status, 0, &child_ru);
            child_done = 1;
            kill_all_descendants(NULL);
            break;
        }
        int timeout_ms = child_done ? 0 : (int)(left_us / 1000 + 1);
        if (pidfd < 0 && !child_done && timeout_ms > 10) timeout_ms = 10;
        int n = poll(pfd, pidfd >= 0 ? 3 : 2, timeout_ms);
        if (n < 0 && errno != EINTR) die("poll");
        for (int k = 0; k < 2; k++) {
            if (pfd[k].fd < 0 || !(pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t got = read(pfd[k].fd, buf, sizeof buf);
            if (got <= 0) {
                close(pfd[k].fd);
                pfd[k].fd = -1;
                fds_open--;
                continue;
            }
            long long room = out_bytes - relayed;
            size_t send = got <= room ? (size_t)got : (size_t)(room > 0 ? room : 0);
            emit(k + 1, buf, send);
            relayed += (long long)send;
            if ((long long)got > room && !output_exceeded) {
                output_exceeded = 1;
                overflow_stream = k + 1;
            }
        }
        if (output_exceeded && !child_done) {
            kill(child, SIGKILL);
        }
        if (!child_done) {
            pid_t r = wait4(child, &status, WNOHANG, &child_ru);
            if (r == child) {
                child_done = 1;
                if (pidfd >= 0) pfd[2].fd = -1;
                /* The main process is gone: no descendant may linger or keep pipes open. */
                kill_all_descendants(NULL);
            }
        } else if (n == 0) {
            break; /* child done and pipes drained (nothing left within a 0 ms poll) */
        }
    }
    /* Drain what the killed processes left in the pipes, within the output limit. */
    for (int k = 0; k < 2; k++) {
        if (pfd[k].fd < 0) continue;
        int fl = fcntl(pfd[k].fd, F_GETFL);
        fcntl(pfd[k].fd, F_SETFL, fl | O_NONBLOCK);
        ssize_t got;
        while ((got = read(pfd[k].fd, buf, sizeof buf)) > 0) {
            long long room = out_bytes - relayed;
            size_t send = got <= room ? (size_t)got : (size_t)(room > 0 ? room : 0);
            emit(k + 1, buf, send);
            relayed += (long long)send;
            if ((long long)got > room && !output_exceeded) {
                output_exceeded = 1;
                overflow_stream = k + 1;
            }
        }
        close(pfd[k].fd);
    }
    if (!child_done) {
        wait4(child, &status, 0, &child_ru);
    }
    kill_all_descendants(NULL);
    int64_t wall = now_us() - start;

    struct rusage all;
    getrusage(RUSAGE_CHILDREN, &all);
    long long cpu_us = (long long)all.ru_utime.tv_sec * 1000000 + all.ru_utime.tv_usec +
                       (long long)all.ru_stime.tv_sec * 1000000 + all.ru_stime.tv_usec;
    long oom_after = oom_kills();
    long oom = (oom_before >= 0 && oom_after >= 0) ? oom_after - oom_before : -1;
    int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    char report[512];
    int len = snprintf(report, sizeof report,
                       "%sSWRUN %s exit=%d signal=%d cpu_us=%lld wall_us=%lld maxrss_kb=%ld "
                       "oom_kills=%ld timed_out=%d output_exceeded=%d overflow_stream=%d "
                       "out_bytes=%lld exec_errno=%d runner_lost=0\n",
                       report_fd >= 0 ? "" : "\x1e", rq->nonce, exit_code, sig, cpu_us,
                       (long long)wall, all.ru_maxrss, oom, timed_out, output_exceeded,
                       overflow_stream, relayed, exec_errno);
    if (len < 0 || (size_t)len >= sizeof report) fail("report too long");
    /* One write of < PIPE_BUF bytes: PID 1 gets all of the line or nothing. */
    write_all(report_fd >= 0 ? report_fd : 2, report, (size_t)len);
}

/* ---- test-case isolation (serve): reset and snapshot ----
 * Both run in PID 1 while no program process exists (before the runner is forked or
 * after every descendant is reaped), so what was looked at is still what is changed. */

static unsigned long wipe_progress; /* entries removed or moved: a pass that did neither
                                     * cannot make the next one succeed */
static unsigned long wipe_moved;    /* names for directories moved up */

/* A failed file system call of reset or snapshot (errno set): the request fails. */
static int fs_error(const char *what) {
    request_failed(what, errno);
    return -1;
}

/* Delete every entry under dfd that the sandbox uid owns (anything else the program
 * cannot have written).  Never follows a symlink: entries are examined with
 * AT_SYMLINK_NOFOLLOW and directories opened with O_NOFOLLOW.  A directory deeper than
 * WIPE_MAX_DEPTH is moved up to rootfd (same filesystem) for a later pass instead, so
 * a deep tree costs neither fds nor stack.  *again: another pass is needed. */
static int wipe_level(int dfd, int rootfd, int depth, int *again) {
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* own offset */
    if (fd < 0) return fs_error("reset: open dir");
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return fs_error("reset: fdopendir");
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT) rc = fs_error("reset: stat");
            continue;
        }
        if (st.st_uid != geteuid()) continue;
        if (!S_ISDIR(st.st_mode)) {
            if (unlinkat(dfd, name, 0) < 0) rc = fs_error("reset: unlink");
            else wipe_progress++;
            continue;
        }
        /* The program may have left it 000; it is ours, so make it enterable (and
         * movable: moving a directory writes its "..").  It is not a symlink (lstat). */
        if (fchmodat(dfd, name, 0700, 0) < 0) {
            rc = fs_error("reset: chmod");
            continue;
        }
        if (depth >= WIPE_MAX_DEPTH) {
            char moved[64];
            int r;
            do {
                snprintf(moved, sizeof moved, ".sw-run-deep-%lu", wipe_moved++);
                r = renameat2(dfd, name, rootfd, moved, RENAME_NOREPLACE);
            } while (r < 0 && errno == EEXIST);
            if (r < 0) rc = fs_error("reset: move deep dir");
            wipe_progress++;
            *again = 1;
            continue;
        }
        int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            rc = fs_error("reset: open dir");
            continue;
        }
        rc = wipe_level(sub, rootfd, depth + 1, again);
        close(sub);
        if (rc < 0) continue;
        if (unlinkat(dfd, name, AT_REMOVEDIR) == 0) wipe_progress++;
        else if (errno == ENOTEMPTY || errno == EEXIST) *again = 1; /* readdir missed some */
        else rc = fs_error("reset: rmdir");
    }
    closedir(d);
    return rc;
}

/* Empty the directory rootfd of everything the sandbox uid owns. */
static int wipe_tree(int rootfd) {
    for (;;) {
        int again = 0;
        unsigned long before = wipe_progress;
        if (wipe_level(rootfd, rootfd, 0, &again) < 0) return -1;
        if (!again) return 0;
        if (wipe_progress == before) {
            errno = ENOTEMPTY;
            return fs_error("reset: a directory cannot be emptied");
        }
    }
}

struct snap_entry {
    char type;   /* 'd' directory, 'f' regular file, 'l' symlink */
    mode_t mode; /* permission bits */
    char *path;  /* relative to the work dir */
    char *data;  /* file content or link target (NUL-terminated), NULL for directories */
    size_t len;
};

static struct snap_entry *snap;
static size_t snap_count;
static unsigned long long snap_bytes;
static int snap_valid; /* a complete snapshot exists */

static void snapshot_free(void) {
    for (size_t i = 0; i < snap_count; i++) {
        free(snap[i].path);
        free(snap[i].data);
    }
    free(snap);
    snap = NULL;
    snap_count = 0;
    snap_bytes = 0;
    snap_valid = 0;
}

/* A new entry with room for len bytes of data (+ NUL), within the caps; NULL (after
 * request_failed) beyond them. */
static struct snap_entry *snap_add(char type, mode_t mode, const char *path, size_t len) {
    size_t path_len = strlen(path);
    if (snap_count >= SNAPSHOT_MAX_ENTRIES) {
        request_failed("snapshot: more than 4096 entries in the work dir", 0);
        return NULL;
    }
    if (snap_bytes + path_len + len > SNAPSHOT_MAX_BYTES) {
        request_failed("snapshot: the work dir holds more than 256 MiB", 0);
        return NULL;
    }
    if (snap_count % 64 == 0) {
        struct snap_entry *grown = realloc(snap, (snap_count + 64) * sizeof *snap);
        if (!grown) {
            request_failed("snapshot: out of memory", 0);
            return NULL;
        }
        snap = grown;
    }
    struct snap_entry *e = &snap[snap_count];
    e->type = type;
    e->mode = mode;
    e->len = len;
    e->path = strdup(path);
    e->data = type == 'd' ? NULL : malloc(len + 1);
    if (!e->path || (type != 'd' && !e->data)) {
        free(e->path);
        free(e->data);
        request_failed("snapshot: out of memory", 0);
        return NULL;
    }
    snap_count++;
    snap_bytes += path_len + len;
    return e;
}

/* Open name (under dfd, never through a symlink) for reading although the program may
 * have taken our read permission away: we own it, so we lend it for a moment. */
static int open_readable(int dfd, const char *name, mode_t mode, int dir) {
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (dir ? O_DIRECTORY : 0);
    mode_t need = dir ? 0500 : 0400;
    if ((mode & need) == need) return openat(dfd, name, flags);
    if (fchmodat(dfd, name, mode | need, 0) < 0) return -1;
    int fd = openat(dfd, name, flags);
    int err = errno;
    fchmodat(dfd, name, mode, 0);
    errno = err;
    return fd;
}

/* Save everything under dfd (path prefix: prefix) in pre-order: a directory before
 * what it holds, as restoring needs it. */
static int snap_walk(int dfd, const char *prefix, int depth) {
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fs_error("snapshot: open dir");
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return fs_error("snapshot: fdopendir");
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        char path[PATH_MAX];
        int n = snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "/" : "", name);
        if (n < 0 || (size_t)n >= sizeof path) {
            request_failed("snapshot: path too long", 0);
            rc = -1;
            break;
        }
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = fs_error("snapshot: stat");
            break;
        }
        mode_t mode = st.st_mode & 0777;
        if (S_ISDIR(st.st_mode)) {
            if (depth >= SNAPSHOT_MAX_DEPTH) {
                request_failed("snapshot: directories nested deeper than 64", 0);
                rc = -1;
                break;
            }
            if (!snap_add('d', mode, path, 0)) {
                rc = -1;
                break;
            }
            int sub = open_readable(dfd, name, mode, 1);
            if (sub < 0) {
                rc = fs_error("snapshot: open dir");
                break;
            }
            rc = snap_walk(sub, path, depth + 1);
            close(sub);
        } else if (S_ISREG(st.st_mode)) {
            struct snap_entry *f = snap_add('f', mode, path, (size_t)st.st_size);
            if (!f) {
                rc = -1;
                break;
            }
            int in = open_readable(dfd, name, mode, 0);
            if (in < 0) {
                rc = fs_error("snapshot: open file");
                break;
            }
            size_t got = 0;
            while (got < f->len) {
                ssize_t r = read(in, f->data + got, f->len - got);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) break;
                got += (size_t)r;
            }
            close(in);
            if (got != f->len) {
                errno = EIO;
                rc = fs_error("snapshot: read file");
                break;
            }
            f->data[f->len] = '\0';
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t len = readlinkat(dfd, name, target, sizeof target);
            if (len < 0 || (size_t)len >= sizeof target) {
                rc = fs_error("snapshot: readlink");
                break;
            }
            struct snap_entry *l = snap_add('l', 0777, path, (size_t)len);
            if (!l) {
                rc = -1;
                break;
            }
            memcpy(l->data, target, (size_t)len);
            l->data[len] = '\0';
        }
        /* fifos and sockets: nothing a later run could need from a snapshot */
    }
    closedir(d);
    return rc;
}

/* Replace the snapshot with the work dir's contents (nothing on failure). */
static void snapshot_take(int workdir) {
    snapshot_free();
    if (snap_walk(workdir, "", 0) < 0) snapshot_free();
    else snap_valid = 1;
}

/* Recreate the snapshot in the (emptied) work dir.  Paths are created in pre-order
 * under directories we just made, so no component can be a symlink; directories get
 * their mode last (a 0500 one must first be filled). */
static void snapshot_restore(int workdir) {
    for (size_t i = 0; i < snap_count; i++) {
        struct snap_entry *e = &snap[i];
        if (e->type == 'd') {
            if (mkdirat(workdir, e->path, 0700) < 0) {
                request_failed("restore: mkdir", errno);
                return;
            }
        } else if (e->type == 'l') {
            if (symlinkat(e->data, workdir, e->path) < 0) {
                request_failed("restore: symlink", errno);
                return;
            }
        } else {
            int fd = openat(workdir, e->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                            0600);
            if (fd < 0 || write_full(fd, e->data, e->len) < 0 || fchmod(fd, e->mode) < 0) {
                request_failed("restore: file", errno);
                if (fd >= 0) close(fd);
                return;
            }
            close(fd);
        }
    }
    for (size_t i = snap_count; i-- > 0;) {
        if (snap[i].type == 'd' && fchmodat(workdir, snap[i].path, snap[i].mode, 0) < 0) {
            request_failed("restore: chmod", errno);
            return;
        }
    }
}

/* Remove the System V shared memory segments, semaphore sets and message queues the
 * sandbox uid can remove: they outlive processes, and the container's IPC namespace is
 * its own (IpcMode private), so all of them are the earlier runs'.  (POSIX message
 * queues are files under /dev/mqueue, emptied with the scratch dirs.) */
static void remove_sysv_ipc(void) {
    const char *tables[] = {"/proc/sysvipc/shm", "/proc/sysvipc/sem", "/proc/sysvipc/msg"};
    for (int t = 0; t < 3; t++) {
        FILE *f = fopen(tables[t], "re");
        if (!f) continue;
        char line[512];
        if (!fgets(line, sizeof line, f)) { /* the column names */
            fclose(f);
            continue;
        }
        while (fgets(line, sizeof line, f)) {
            long key;
            int id;
            if (sscanf(line, "%ld %d", &key, &id) != 2) continue;
            /* Not ours (EPERM) or already gone: nothing of the program's to remove. */
            if (t == 0) shmctl(id, IPC_RMID, NULL);
            else if (t == 1) semctl(id, 0, IPC_RMID);
            else msgctl(id, IPC_RMID, NULL);
        }
        fclose(f);
    }
}

/* The work dir's root belongs to the sandbox uid (the other scratch roots are root's),
 * so a program can mark it with user.* extended attributes (tmpfs keeps them) and
 * timestamps: drop the attributes and set both times to now, or they would carry data
 * to the next run. */
static int wipe_root_marks(int workdir) {
    static char names[65536]; /* XATTR_LIST_MAX: the kernel lists no more than this */
    ssize_t len = flistxattr(workdir, names, sizeof names); /* complete: one list */
    if (len < 0 && errno != ENOTSUP) return fs_error("reset: list xattrs");
    for (char *name = names; len > 0 && name < names + len; name += strlen(name) + 1)
        if (strncmp(name, "user.", 5) == 0 && fremovexattr(workdir, name) < 0 && errno != ENODATA)
            return fs_error("reset: remove xattr"); /* the program cannot set others */
    if (futimens(workdir, NULL) < 0) return fs_error("reset: set times");
    return 0;
}

/* --reset 1: empty the work dir, /tmp, /dev/shm and /dev/mqueue (and System V IPC), then
 * restore the snapshot; --reset 2 (forget): empty them and drop the snapshot. */
static void reset_sandbox(int workdir, int forget) {
    if (getpid() != 1) {
        /* Only a container's PID 1 may: anywhere else /tmp is a host's. */
        request_failed("--reset needs sw-run serve to be the container's PID 1", 0);
        return;
    }
    /* The work dir is ours and the program's: it may have left it 000. */
    if (fchmod(workdir, 0700) < 0) {
        request_failed("reset: chmod work dir", errno);
        return;
    }
    if (wipe_tree(workdir) < 0) return;
    if (wipe_root_marks(workdir) < 0) return;
    /* POSIX message queues outlive their processes like files do: Docker mounts the
     * IPC namespace's mqueue fs at /dev/mqueue, where unlink removes one. */
    const char *scratch[] = {"/tmp", "/dev/shm", "/dev/mqueue"};
    for (size_t i = 0; i < sizeof scratch / sizeof scratch[0]; i++) {
        int fd = open(scratch[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT) continue;
            request_failed("reset: open scratch dir", errno);
            return;
        }
        int rc = wipe_tree(fd);
        close(fd);
        if (rc < 0) return;
    }
    remove_sysv_ipc();
    if (forget) snapshot_free();
    else if (snap_valid) snapshot_restore(workdir);
}

/* ---- serve mode ---- */

static long long timeval_us(struct timeval tv) {
    return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* Run the request in a runner child and supervise it (see "Supervision" above).  Fills
 * report with the runner's line or one of PID 1's own; 0 (after request_failed) when no
 * runner could be started or it failed by itself. */
static int run_supervised(const struct run_opts *o, struct run_input *rq, char *report,
                          size_t cap) {
    int rp[2];
    if (pipe2(rp, O_CLOEXEC) < 0) {
        request_failed("pipe", errno);
        return 0;
    }
    struct rusage before;
    getrusage(RUSAGE_CHILDREN, &before);
    long oom_before = oom_kills();
    int64_t start = now_us();
    pid_t runner = fork();
    if (runner < 0) {
        request_failed("fork", errno);
        close(rp[0]);
        close(rp[1]);
        return 0;
    }
    if (runner == 0) {
        close(rp[0]);
        execute(o, rq, rp[1]);
        _exit(0);
    }
    close(rp[1]);
    close(rq->stdin_fd);
    rq->stdin_fd = -1;

    int pidfd = (int)syscall(SYS_pidfd_open, runner, 0);
    int64_t deadline = start + (o->wall_ms + SUPERVISE_SLACK_MS) * 1000;
    size_t got = 0;
    int pipe_open = 1, runner_done = 0, timed_out = 0, runner_status = 0;
    long maxrss = 0;
    while (!runner_done) {
        int64_t left_us = deadline - now_us();
        if (left_us <= 0) {
            timed_out = 1;
            break;
        }
        int timeout_ms = (int)(left_us / 1000 + 1);
        if (pidfd < 0 && timeout_ms > 10) timeout_ms = 10;
        /* Our input too, for its hangup only (events 0): a request's bytes are all read
         * by now, and the worker sends the next one only after this one's end frame. */
        struct pollfd pfd[3] = {
            {pipe_open ? rp[0] : -1, POLLIN, 0}, {pidfd, POLLIN, 0}, {STDIN_FILENO, 0, 0}};
        if (poll(pfd, 3, timeout_ms) < 0 && errno != EINTR) die("poll");
        if (pfd[2].revents & (POLLHUP | POLLERR)) {
            kill(runner, SIGKILL);
            kill_all_descendants(NULL);
            _exit(0); /* the worker hung up: as at the end of input between requests */
        }
        if (pipe_open && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(rp[0], report + got, cap - 1 - got);
            if (n > 0) got += (size_t)n;
            if (n == 0 || got == cap - 1) pipe_open = 0;
        }
        struct rusage ru;
        if (wait4(runner, &runner_status, WNOHANG, &ru) == runner) {
            runner_done = 1;
            if (ru.ru_maxrss > maxrss) maxrss = ru.ru_maxrss;
        }
    }
    if (runner_done && pipe_open) {
        /* What the runner wrote before it ended is in the pipe already. */
        fcntl(rp[0], F_SETFL, O_NONBLOCK);
        ssize_t n;
        while (got < cap - 1 && (n = read(rp[0], report + got, cap - 1 - got)) > 0) got += (size_t)n;
    }
    close(rp[0]);
    if (pidfd >= 0) close(pidfd);
    /* A stopped runner, the orphans of a killed one, anything they forked: all of it. */
    kill_all_descendants(&maxrss);
    report[got] = '\0';
    char mark[NONCE_LEN + 8];
    snprintf(mark, sizeof mark, "SWRUN %s ", rq->nonce);
    if (got > 0 && report[got - 1] == '\n' && strncmp(report, mark, strlen(mark)) == 0 &&
        strchr(report, '\n') == report + got - 1)
        return 1; /* the runner's own report (complete: one atomic write) */
    if (runner_done && WIFEXITED(runner_status)) {
        /* The runner gave up (fail/die, its reason already sent as an 'E' frame): our
         * failure, not the program's, so no report.  The program cannot make it exit,
         * only kill it. */
        request_failed("the run failed inside the helper", 0);
        return 0;
    }

    struct rusage after;
    getrusage(RUSAGE_CHILDREN, &after);
    long long cpu_us = timeval_us(after.ru_utime) + timeval_us(after.ru_stime) -
                       timeval_us(before.ru_utime) - timeval_us(before.ru_stime);
    long oom_after = oom_kills();
    long oom = (oom_before >= 0 && oom_after >= 0) ? oom_after - oom_before : -1;
    snprintf(report, cap,
             "SWRUN %s exit=-1 signal=9 cpu_us=%lld wall_us=%lld maxrss_kb=%ld oom_kills=%ld "
             "timed_out=%d output_exceeded=0 overflow_stream=0 out_bytes=0 exec_errno=0 "
             "runner_lost=%d\n",
             rq->nonce, cpu_us, (long long)(now_us() - start), maxrss, oom, timed_out,
             !timed_out);
    return 1;
}

/* The next request's header line into line: 1, or 0 at the end of input, or -1 when it
 * is too long.  resync: first skip input up to a line starting "SWSERVE1 " (after a
 * request whose framing was lost). */
static int next_header(char *line, size_t cap, int resync) {
    static const char tag[] = "SWSERVE1 ";
    const size_t tag_len = sizeof tag - 1;
    for (;;) {
        size_t i = 0;
        char c = '\0';
        while (i < tag_len) {
            if (!read_byte(&c)) return 0;
            if (c != tag[i] && resync) break;
            line[i++] = c;
            if (c == '\n') break;
        }
        if (resync && (i < tag_len || c == '\n')) {
            while (c != '\n')
                if (!read_byte(&c)) return 0;
            continue; /* not a request: the next line may be */
        }
        if (i > 0 && line[i - 1] == '\n') { /* a short line */
            line[i - 1] = '\0';
            return 1;
        }
        return read_line(line + i, cap - i) ? 1 : -1;
    }
}

/* End the request: its error, if it did not run (or lost its report), and the end frame
 * with its nonce ("" when it was never read). */
static void end_request(const char *nonce) {
    if (req_error[0] != '\0') write_frame('E', req_error, strlen(req_error));
    write_frame('Z', nonce, strlen(nonce));
    req_error[0] = '\0';
}

static void serve(void) {
    framed = 1;
    /* The work dir: files, reset and snapshot all go through this fd, never a path. */
    int workdir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (workdir < 0) die("open work dir");
    int resync = 0;
    for (;;) {
        char line[64];
        unsigned long long nargs = 0;
        const char *p;
        req_error[0] = '\0';
        int got = next_header(line, sizeof line, resync);
        if (got == 0) _exit(0); /* the worker hung up */
        resync = 0;
        if (got < 0 || strncmp(line, "SWSERVE1 ", 9) != 0 || !(p = parse_dec(line + 9, &nargs)) ||
            *p != '\0') {
            request_failed("bad request header", 0);
            end_request("");
            resync = 1;
            continue;
        }
        /* The arguments: at most MAX_ARGS kept, each at most MAX_ARG_LEN bytes; beyond
         * that (or without memory) still read, so the stream stays in step. */
        if (nargs == 0) request_failed("no arguments", 0);
        if (nargs > MAX_ARGS) request_failed("more than 512 arguments", 0);
        size_t kept = nargs > MAX_ARGS ? 0 : (size_t)nargs;
        char **args = calloc(kept + 1, sizeof *args);
        if (!args) {
            request_failed("out of memory", 0);
            kept = 0;
        }
        int lost = 0;
        for (unsigned long long i = 0; i < nargs && !lost; i++) {
            unsigned long long len;
            if (!read_line(line, sizeof line) || !(p = parse_dec(line, &len)) || *p != '\0') {
                request_failed("bad argument length", 0);
                lost = 1;
                break;
            }
            if (len > MAX_ARG_LEN) request_failed("argument longer than 64 KiB", 0);
            char *arg = i < kept && len <= MAX_ARG_LEN ? malloc(len + 1) : NULL;
            if (i < kept && len <= MAX_ARG_LEN && !arg) request_failed("out of memory", 0);
            if (!arg) {
                copy_n(-1, len, NULL);
                continue;
            }
            read_exact(arg, len);
            arg[len] = '\0';
            args[i] = arg;
            if (strlen(arg) != len) request_failed("NUL in argument", 0);
        }
        struct run_opts opts;
        memset(&opts, 0, sizeof opts);
        if (!lost && req_error[0] == '\0') parse_opts((int)kept, args, &opts);
        struct run_input rq = {"", -1};
        if (!lost) lost = read_input(&rq, workdir, req_error[0] == '\0' ? opts.reset : 0) < 0;
        if (!lost && req_error[0] == '\0' && opts.snapshot == 1) snapshot_take(workdir);
        if (!lost && req_error[0] == '\0') {
            char report[512];
            int have = run_supervised(&opts, &rq, report, sizeof report);
            if (have && opts.snapshot == 2) snapshot_take(workdir);
            /* A failed snapshot 2 withholds the report: the run's outcome is not usable. */
            if (have && req_error[0] == '\0') write_frame('R', report, strlen(report));
        }
        if (rq.stdin_fd >= 0) close(rq.stdin_fd);
        end_request(rq.nonce);
        resync = lost;
        if (args) {
            for (size_t i = 0; i < kept; i++) free(args[i]);
            free(args);
        }
    }
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "idle") == 0) idle();
    if (argc == 2 && strcmp(argv[1], "noop") == 0) return 0;
    int serving = argc == 2 && strcmp(argv[1], "serve") == 0;
    if (!serving && (argc < 4 || strcmp(argv[1], "run") != 0))
        fail("usage: sw-run idle | sw-run noop | sw-run serve | sw-run run [--cpu-ms N] [--wall-ms N] "
             "[--out-bytes N] [--fsize-bytes N] [--nofile N] -- CMD...");

    /* Before anything else: no ptrace, no /proc/<us>/mem or fd access by same-uid code.
     * Inherited by the forked runners of serve mode (dumpability survives fork). */
    if (prctl(PR_SET_DUMPABLE, 0) < 0) die("PR_SET_DUMPABLE");
    ignore_signals();
    if (serving) {
        /* As PID 1 every orphan is ours anyway; elsewhere this makes it so. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) die("PR_SET_CHILD_SUBREAPER");
        serve();
    }
    /* run: one request; --reset and --snapshot are accepted and ignored (no process
     * outlives the exec to keep a snapshot). */
    struct run_opts opts;
    parse_opts(argc - 2, argv + 2, &opts);
    struct run_input rq;
    int workdir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (workdir < 0) die("open work dir");
    read_input(&rq, workdir, 0);
    close(workdir);
    execute(&opts, &rq, -1);
    return 0;
}
