/*
 * sw-run: streamworker's trusted helper inside every runtime container.
 *
 *   sw-run idle                     the container's main process: waits forever
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
 * Input of `run` on stdin:
 *   "SWRUN1 <nonce> <nfiles> <stdin_bytes>\n"
 *   nfiles x ("<path_len> <content_len>\n" <path> <content>)
 *   <stdin_bytes> bytes handed to CMD as its stdin
 * Files are created relative to the work dir with O_EXCL|O_NOFOLLOW and never through
 * an existing symlink.  The report line (last bytes on stderr):
 *   "\x1eSWRUN <nonce> exit=.. signal=.. cpu_us=.. wall_us=.. maxrss_kb=.. oom_kills=..
 *    timed_out=.. output_exceeded=.. overflow_stream=1|2|0 out_bytes=.. exec_errno=..\n"
 *
 * `serve` reads requests until EOF, each "SWSERVE1 <argc>\n", argc x ("<len>\n" <arg>)
 * (the arguments of `run`: OPTIONS -- CMD...), then exactly the input of `run`.  Each
 * request is run by a forked child exactly as `run` runs (fresh rusage, subreaper), and
 * everything is sent back on stdout as frames: a 5-byte header (kind, payload length as
 * 32-bit big endian) and the payload.  Kinds: 'O' program stdout, 'E' program stderr,
 * 'R' the report line ("SWRUN <nonce> exit=..\n"), 'Z' end of the run (payload: nonce),
 * written by the serving parent only after the child and every descendant are reaped.
 * Stdout and stderr of a container reach the worker through separate pipes whose
 * relative order Docker does not keep, hence one framed stream.  Why nothing can be
 * forged: the program never holds an fd of the container's stdio (its 0/1/2 are a memfd
 * and pipes, everything else is close-on-exec), the helper is non-dumpable (no
 * /proc/<pid>/fd), and there is no init holding the stdio either: the server is PID 1
 * (Docker's Init off), which also makes it immune to signals from inside the container.
 * Its payloads are length-prefixed, so program bytes can never end a frame early, and
 * each frame fits in one atomic pipe write (<= PIPE_BUF), so a child killed mid-run
 * never leaves half a frame behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NONCE_LEN 32
#define MAX_FILES 64
#define MAX_PATH_LEN 255

static void die(const char *msg) {
    dprintf(2, "sw-run: %s: %s\n", msg, strerror(errno));
    _exit(125);
}

static void fail(const char *msg) {
    dprintf(2, "sw-run: %s\n", msg);
    _exit(125);
}

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void read_exact(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("read stdin");
        if (n == 0) fail("unexpected end of input");
        p += n;
        len -= (size_t)n;
    }
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

/* Read one '\n'-terminated header line (at most cap-1 bytes) byte by byte. */
static void read_line(int fd, char *buf, size_t cap) {
    size_t i = 0;
    for (;;) {
        if (i + 1 >= cap) fail("header line too long");
        read_exact(fd, buf + i, 1);
        if (buf[i] == '\n') break;
        i++;
    }
    buf[i] = '\0';
}

static int framed = 0; /* serve mode: output and the report become frames on stdout */
static char file_error[160]; /* serve mode: why the request's files could not be written */

/* A failure to write a delivered file: fatal in run mode; in serve mode the request is
 * still read to its end (so the stream stays in step) and answered without a run. */
static void file_failed(const char *msg, int with_errno) {
    if (!framed) {
        if (with_errno) die(msg);
        fail(msg);
    }
    if (file_error[0] == '\0')
        snprintf(file_error, sizeof file_error, "sw-run: %s%s%s\n", msg, with_errno ? ": " : "",
                 with_errno ? strerror(errno) : "");
}

/* Copy exactly len bytes from fd to out (a file or memfd; -1 discards them). */
static void copy_n(int fd, int out, unsigned long long len) {
    char buf[65536];
    while (len > 0) {
        size_t chunk = len < sizeof buf ? (size_t)len : sizeof buf;
        read_exact(fd, buf, chunk);
        const char *p = buf;
        size_t left = chunk;
        while (out >= 0 && left > 0) {
            ssize_t n = write(out, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                file_failed("write file", 1);
                out = -1;
                break;
            }
            p += n;
            left -= (size_t)n;
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
 * -1 (after file_failed) when it cannot be created. */
static int open_new_file(int dirfd, char *path) {
    int cur = dup(dirfd);
    if (cur < 0) die("dup");
    char *p = path;
    for (;;) {
        char *slash = strchr(p, '/');
        if (!slash) break;
        *slash = '\0';
        if (mkdirat(cur, p, 0700) < 0 && errno != EEXIST) {
            file_failed("mkdir", 1);
            close(cur);
            return -1;
        }
        int next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            file_failed("open dir", 1);
            close(cur);
            return -1;
        }
        close(cur);
        cur = next;
        *slash = '/';
        p = slash + 1;
    }
    int fd = openat(cur, p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) file_failed("create file", 1);
    close(cur);
    return fd;
}

static void receive_files(int in, unsigned long nfiles) {
    int dirfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) die("open work dir");
    for (unsigned long i = 0; i < nfiles; i++) {
        char line[64];
        unsigned long path_len;
        unsigned long long content_len;
        read_line(in, line, sizeof line);
        if (sscanf(line, "%lu %llu", &path_len, &content_len) != 2 || path_len == 0 ||
            path_len > MAX_PATH_LEN)
            fail("bad file header");
        char path[MAX_PATH_LEN + 1];
        read_exact(in, path, path_len);
        path[path_len] = '\0';
        int fd = -1;
        if (strlen(path) != path_len || !path_is_safe(path)) file_failed("unsafe file path", 0);
        else if (file_error[0] == '\0') fd = open_new_file(dirfd, path);
        copy_n(in, fd, content_len);
        if (fd >= 0) close(fd);
    }
    close(dirfd);
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

/* SIGKILL every child of ours (orphans re-parent to us: we are a subreaper) and reap,
 * until no child is left. */
static void kill_all_descendants(pid_t self) {
    for (int round = 0; round < 10000; round++) {
        DIR *d = opendir("/proc");
        if (d) {
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
        int status;
        pid_t r;
        int reaped = 0;
        while ((r = waitpid(-1, &status, WNOHANG)) > 0) reaped = 1;
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
    char **cmd;
};

/* Parse "OPTIONS -- CMD..." (argv[0..argc)). */
static void parse_opts(int argc, char **argv, struct run_opts *o) {
    o->cpu_ms = 0;
    o->wall_ms = 10000;
    o->out_bytes = 1 << 20;
    o->fsize_bytes = 0;
    o->nofile = 256;
    int i = 0;
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (i + 1 >= argc) fail("option without value");
        long long v = atoll(argv[i + 1]);
        if (strcmp(argv[i], "--cpu-ms") == 0) o->cpu_ms = v;
        else if (strcmp(argv[i], "--wall-ms") == 0) o->wall_ms = v;
        else if (strcmp(argv[i], "--out-bytes") == 0) o->out_bytes = v;
        else if (strcmp(argv[i], "--fsize-bytes") == 0) o->fsize_bytes = v;
        else if (strcmp(argv[i], "--nofile") == 0) o->nofile = v;
        else fail("unknown option");
    }
    if (i + 1 >= argc) fail("missing command after --");
    o->cmd = argv + i + 1;
}

struct run_input {
    char nonce[NONCE_LEN + 1];
    int stdin_fd;
};

/* Read the run's header, create its files and take its stdin into a memfd. */
static void read_input(int in, struct run_input *rq) {
    char header[160];
    unsigned long nfiles;
    unsigned long long stdin_len;
    read_line(in, header, sizeof header);
    if (sscanf(header, "SWRUN1 %32s %lu %llu", rq->nonce, &nfiles, &stdin_len) != 3 ||
        strlen(rq->nonce) != NONCE_LEN || nfiles > MAX_FILES)
        fail("bad header");
    receive_files(in, nfiles);
    rq->stdin_fd = memfd_create("stdin", MFD_CLOEXEC);
    if (rq->stdin_fd < 0) die("memfd_create");
    copy_n(in, rq->stdin_fd, stdin_len);
    if (lseek(rq->stdin_fd, 0, SEEK_SET) < 0) die("lseek");
}

static void ignore_signals(void) {
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
}

/* Run o->cmd once with rq's stdin, relay its output, kill every descendant, report.
 * Must run in a process of its own: the figures are this process's RUSAGE_CHILDREN. */
static void execute(const struct run_opts *o, const struct run_input *rq) {
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
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
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
            kill_all_descendants(getpid());
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
                kill_all_descendants(getpid());
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
    kill_all_descendants(getpid());
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
                       "out_bytes=%lld exec_errno=%d\n",
                       framed ? "" : "\x1e", rq->nonce, exit_code, sig, cpu_us, (long long)wall,
                       all.ru_maxrss, oom, timed_out, output_exceeded, overflow_stream, relayed,
                       exec_errno);
    if (len < 0 || (size_t)len >= sizeof report) fail("report too long");
    if (framed) write_frame('R', report, (size_t)len);
    else write_all(2, report, (size_t)len);
}

/* ---- serve mode ---- */

#define MAX_ARGS 256
#define MAX_ARG_LEN 65536

/* Like read_line, but a clean end of input before the first byte returns 0. */
static int read_line_or_eof(int fd, char *buf, size_t cap) {
    ssize_t n;
    do n = read(fd, buf, 1);
    while (n < 0 && errno == EINTR);
    if (n < 0) die("read stdin");
    if (n == 0) return 0;
    if (buf[0] == '\n') {
        buf[0] = '\0';
        return 1;
    }
    read_line(fd, buf + 1, cap - 1);
    return 1;
}

static void serve(void) {
    framed = 1;
    for (;;) {
        char line[64];
        unsigned long nargs;
        if (!read_line_or_eof(0, line, sizeof line)) _exit(0); /* the worker hung up */
        if (sscanf(line, "SWSERVE1 %lu", &nargs) != 1 || nargs == 0 || nargs > MAX_ARGS)
            fail("bad request header");
        char **args = calloc(nargs + 1, sizeof *args);
        if (!args) die("calloc");
        for (unsigned long i = 0; i < nargs; i++) {
            unsigned long len;
            read_line(0, line, sizeof line);
            if (sscanf(line, "%lu", &len) != 1 || len > MAX_ARG_LEN) fail("bad argument length");
            args[i] = malloc(len + 1);
            if (!args[i]) die("malloc");
            read_exact(0, args[i], len);
            args[i][len] = '\0';
            if (strlen(args[i]) != len) fail("NUL in argument");
        }
        struct run_opts opts;
        parse_opts((int)nargs, args, &opts);
        struct run_input rq;
        read_input(0, &rq); /* all of the request is read here: a killed child can't desync */
        if (file_error[0] != '\0') {
            /* Answered like `run` would answer it: a message and no report. */
            write_frame('E', file_error, strlen(file_error));
            file_error[0] = '\0';
            close(rq.stdin_fd);
        } else {
            pid_t runner = fork();
            if (runner < 0) die("fork");
            if (runner == 0) {
                execute(&opts, &rq);
                _exit(0);
            }
            close(rq.stdin_fd);
            /* The runner is a subreaper; were it killed, its orphans are ours: kill them. */
            int status;
            while (waitpid(runner, &status, 0) < 0 && errno == EINTR) {
            }
            kill_all_descendants(getpid());
        }
        for (unsigned long i = 0; i < nargs; i++) free(args[i]);
        free(args);
        write_frame('Z', rq.nonce, NONCE_LEN);
    }
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "idle") == 0) idle();
    int serving = argc == 2 && strcmp(argv[1], "serve") == 0;
    if (!serving && (argc < 4 || strcmp(argv[1], "run") != 0))
        fail("usage: sw-run idle | sw-run serve | sw-run run [--cpu-ms N] [--wall-ms N] "
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
    struct run_opts opts;
    parse_opts(argc - 2, argv + 2, &opts);
    struct run_input rq;
    read_input(0, &rq);
    execute(&opts, &rq);
    return 0;
}
