/*
 * reclaimlab guest agent: runs inside the kit's QEMU guest as root, does the experiment's
 * steps on command and streams the guest's memory counters back to the host.
 *
 * Built on the host with `gcc -static -O2` (reclaimlab/vm/build.py) and started by the
 * initramfs's /init with one argument: the virtio-serial port (e.g. /dev/vport1p1).
 *
 * PROTOCOL (version 1). ASCII lines ending in '\n' on one bidirectional channel.
 * Times <t_ms> are the guest's CLOCK_MONOTONIC in milliseconds since the agent started.
 *
 * host -> agent:   <id> <verb> [args]             id: a decimal number the host chooses
 *   alloc <bytes>        calloc a buffer (nothing is committed until touched)
 *   touch                write one byte in every 4 KiB page of it; reply pages=, checksum=
 *   free                 free it (glibc munmaps a buffer this large: pages go back to the buddy allocator)
 *   fragment <bytes> [k] map, touch, then keep one 4 KiB page in every k (default 3) and release the rest:
 *                        free holes of k-1 pages (k=64: 252 KiB holes, above order 5 and below order 9)
 *   unfragment           release what fragment held
 *   write_file <bytes>   write a file of that size on the guest's disk (/mnt/reclaimlab.dat), no fsync
 *   read_file            read it back whole; reply bytes=, checksum=
 *   rm_file              delete it
 *   sync                 sync(2)
 *   drop_caches <1|2|3>  sync, then write /proc/sys/vm/drop_caches
 *   compact              write 1 to /proc/sys/vm/compact_memory
 *   reclaim <bytes> [swappiness]  write "<bytes>[ swappiness=<n>]" to /sys/fs/cgroup/memory.reclaim (the root
 *                        cgroup of the cgroup2 mount, as WSL's RequestReclaim does); reply request=<what was
 *                        written, blanks as '_'> eagain=<0|1> (EAGAIN: the kernel reclaimed less than asked,
 *                        which WSL counts as success); err <strerror> (errno=<n>) for any other failure
 *   observe              one reading for an autoMemoryReclaim policy: cpu=<the aggregate /proc/stat cpu
 *                        line's first 8 fields, comma-separated> own=<this agent's utime,stime in ticks>
 *                        sampler=<the sampler thread's utime,stime in ticks, a part of own>
 *                        and the /proc/meminfo fields MemTotal MemFree Cached Active(file) Inactive(file)
 *                        SReclaimable in KiB as mem_total= mem_free= cached= active_file= inactive_file=
 *                        sreclaimable=, psi_some_avg10=<x|none> (/proc/pressure/memory) and
 *                        refault_file=<n|none> (/proc/vmstat workingset_refault_file)
 *   set <path> <value>   write a value to a file under /proc/sys/ or /sys/
 *   get <path>           read a file under /proc/ or /sys/; reply value=<text, blanks as '_'>
 *   snapshot <label>     send one B line (buddyinfo) with this label, then the ack
 *   pageflags [ours]     send the guest's /proc/kpageflags as P lines, then the ack: frames=, runs=,
 *                        lines=, read_ms= (to read, encode and send), kernel_ms= (of it, in the
 *                        kernel's reads of /proc/kpageflags), memfree_kib=, and the free
 *                        blocks per order (buddyinfo summed over zones) before= and after= the read.
 *                        With `ours`: the frames of alloc's buffer (its PFNs from /proc/self/pagemap,
 *                        read just before the flags) carry PAGEFLAGS_OURS in their words, and the ack
 *                        adds ours_pages= (frames marked); err when nothing is allocated
 *   rate <hz>            samples per second (1..50; default 10)
 *   quit                 ack, sync and power the guest off
 *
 * agent -> host:
 *   H <t_ms> version=1 kernel=<release> page_size=<bytes> page_reporting_order=<n|none>
 *            disk=<yes|no> thp=<[mode] of transparent_hugepage/enabled>
 *   S <t_ms> <Key>=<value> ...   one sample: meminfo fields in KiB under their /proc/meminfo names,
 *            the vmstat compact_* counters, and buddy=<free blocks per order, all zones, c0,c1,...>
 *   B <t_ms> <label> <zone>:<c0>,<c1>,...;<zone>:...   a /proc/buddyinfo snapshot per zone
 *   P <t_ms> <id> <pfn> <run>,<run>,...   page flags of frames pfn, pfn+1, ... for command <id>;
 *            a run is <hex word>[*<count>] (count 1 when absent): count frames with that word.
 *            The word is the kpageflags word reduced to the bits the host's decoder reads
 *            (PAGEFLAGS_KEEP below: UPTODATE only with BUDDY, where it means reported), and
 *            bit 0 (KPF_LOCKED, never kept) standing for "some other flag": so free blocks,
 *            anon, file, slab and page tables make long runs. Lines stay under 8 KiB.
 *            Bit 62 (PAGEFLAGS_OURS, not a kpageflags bit) marks a frame of alloc's buffer
 *            (`pageflags ours` only).
 *   A <id> <t_start_ms> <t_end_ms> ok [key=value ...]   a command done
 *   A <id> <t_start_ms> <t_end_ms> err <message>         a command failed
 *   L <t_ms> <text>              a note
 *
 * Samples keep flowing while a command runs (the sampler is its own thread), so the host
 * sees memory rise during a touch. The agent powers the guest off when the host side of the
 * channel goes away, so an orphaned VM also stops from the inside.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define DATA_FILE "/mnt/reclaimlab.dat"
#define FRAG_KEEP_EVERY 3UL    /* fragment keeps one page in three */

static int chan = -1;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec start;
static volatile int sample_hz = 10;
static volatile long sampler_tid = 0;   /* the sampler thread, so observe can report its CPU time apart */

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - start.tv_sec) * 1000L + (t.tv_nsec - start.tv_nsec) / 1000000L;
}

/* One whole line per write(2) under a lock: the sampler and command threads never interleave. */
static void emit(const char *fmt, ...) {
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    pthread_mutex_lock(&out_lock);
    for (int off = 0; off < n;) {
        ssize_t w = write(chan, line + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break; /* host gone: the reader notices and powers off */
        off += w;
    }
    pthread_mutex_unlock(&out_lock);
}

static ssize_t read_file_at(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t got = 0, r;
    while ((size_t)got < size - 1 && (r = read(fd, buf + got, size - 1 - got)) > 0) got += r;
    close(fd);
    buf[got < 0 ? 0 : got] = 0;
    return got;
}

static int write_text(const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, value, strlen(value));
    int saved = errno;
    close(fd);
    errno = saved;
    return w < 0 ? -1 : 0;
}

/* ---- sampling ---------------------------------------------------------------------------- */

static const char *MEMINFO_KEYS[] = {
    "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "AnonPages", "Shmem",
    "SReclaimable", "SUnreclaim", "AnonHugePages", "Dirty", "Writeback", NULL};

static int append(char *out, int pos, int cap, const char *fmt, ...) {
    if (pos >= cap) return pos;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + pos, cap - pos, fmt, ap);
    va_end(ap);
    return n < 0 ? pos : (pos + n < cap ? pos + n : cap);
}

static int sample_meminfo(char *out, int pos, int cap) {
    char buf[8192];
    if (read_file_at("/proc/meminfo", buf, sizeof buf) <= 0) return pos;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = 0;
        for (int k = 0; MEMINFO_KEYS[k]; k++)
            if (strcmp(line, MEMINFO_KEYS[k]) == 0) {
                pos = append(out, pos, cap, " %s=%lld", line, strtoll(colon + 1, NULL, 10));
                break;
            }
    }
    return pos;
}

static int sample_vmstat(char *out, int pos, int cap) {
    static char buf[16384];
    if (read_file_at("/proc/vmstat", buf, sizeof buf) <= 0) return pos;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "compact_", 8) != 0) continue;
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        *sp = 0;
        pos = append(out, pos, cap, " %s=%s", line, sp + 1);
    }
    return pos;
}

#define MAX_ORDER_SEEN 16

/* Buddyinfo as text, either per zone (snapshot) or summed over zones (each sample). */
static int buddyinfo(char *out, int pos, int cap, int per_zone) {
    char buf[4096];
    long long total[MAX_ORDER_SEEN] = {0};
    int orders = 0;
    if (read_file_at("/proc/buddyinfo", buf, sizeof buf) <= 0) return pos;
    int first = 1;
    for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *z = strstr(line, "zone");
        if (!z) continue;
        char zone[32];
        int used = 0;
        if (sscanf(z, "zone %31s%n", zone, &used) != 1) continue;
        char *p = z + used;
        if (per_zone) pos = append(out, pos, cap, "%s%s:", first ? "" : ";", zone);
        first = 0;
        for (int k = 0; k < MAX_ORDER_SEEN; k++) {
            char *end;
            long long v = strtoll(p, &end, 10);
            if (end == p) break;
            p = end;
            total[k] += v;
            if (k + 1 > orders) orders = k + 1;
            if (per_zone) pos = append(out, pos, cap, "%s%lld", k ? "," : "", v);
        }
    }
    if (!per_zone) {
        pos = append(out, pos, cap, " buddy=");
        for (int k = 0; k < orders; k++) pos = append(out, pos, cap, "%s%lld", k ? "," : "", total[k]);
    }
    return pos;
}

static void *sampler(void *unused) {
    (void)unused;
    sampler_tid = syscall(SYS_gettid);
    char line[4096];
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        int pos = append(line, 0, sizeof line, "S %ld", now_ms());
        pos = sample_meminfo(line, pos, sizeof line);
        pos = sample_vmstat(line, pos, sizeof line);
        buddyinfo(line, pos, sizeof line, 0);
        emit("%s", line);
        /* Absolute deadlines: a slow sample does not push every later one back. */
        long step_ns = 1000000000L / (sample_hz > 0 ? sample_hz : 10);
        next.tv_nsec += step_ns;
        while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
            next = now; /* fell behind (e.g. the CPU was busy): resume from now, no burst */
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    return NULL;
}

/* ---- page flags (the guest's map of physical memory) ------------------------------------ */

static void reply(long id, long t0, const char *status, const char *fmt, ...);

#define KPF_BIT(n) (1ULL << (n))
/* UPTODATE(3) LRU(5) SLAB(7) BUDDY(10) ANON(12) NOPAGE(20) OFFLINE(23) PGTABLE(26):
   include/uapi/linux/kernel-page-flags.h; the decoder is reclaimlab/probe/physmap.py */
#define PAGEFLAGS_KEEP (KPF_BIT(5) | KPF_BIT(7) | KPF_BIT(10) | KPF_BIT(12) | KPF_BIT(20) | KPF_BIT(23) | KPF_BIT(26))
#define PAGEFLAGS_OTHER KPF_BIT(0)
#define PAGEFLAGS_OURS KPF_BIT(62)   /* a frame of alloc's buffer; reclaimlab/vm/guestmap.py OURS_BIT */
#define PAGEFLAGS_CHUNK 65536   /* words per read: 512 KiB */
#define PLINE_MAX 7900

static unsigned long long reduce_flags(unsigned long long w) {
    unsigned long long r = w & PAGEFLAGS_KEEP;
    if ((w & KPF_BIT(10)) && (w & KPF_BIT(3))) r |= KPF_BIT(3); /* PG_reported on a free block's head */
    if (!r && w) r = PAGEFLAGS_OTHER;
    return r;
}

struct pline {
    char buf[8192];
    int pos, runs_in_line;
    long id;
    unsigned long long next_pfn; /* pfn of the first frame not yet in a line */
    unsigned long lines, runs;
};

static void pline_flush(struct pline *pl) {
    if (!pl->runs_in_line) return;
    emit("%s", pl->buf);
    pl->lines++;
    pl->pos = 0;
    pl->runs_in_line = 0;
}

static void pline_run(struct pline *pl, unsigned long long word, unsigned long long count) {
    if (!pl->runs_in_line)
        pl->pos = snprintf(pl->buf, sizeof pl->buf, "P %ld %ld %llu ", now_ms(), pl->id, pl->next_pfn);
    int n = count == 1 ? snprintf(pl->buf + pl->pos, sizeof pl->buf - pl->pos, "%s%llx", pl->runs_in_line ? "," : "", word)
                       : snprintf(pl->buf + pl->pos, sizeof pl->buf - pl->pos, "%s%llx*%llu", pl->runs_in_line ? "," : "", word, count);
    pl->pos += n;
    pl->runs_in_line++;
    pl->runs++;
    pl->next_pfn += count;
    if (pl->pos > PLINE_MAX) pline_flush(pl);
}

static void buddy_totals(char *out, int cap) {
    char tmp[1024];
    int pos = buddyinfo(tmp, 0, sizeof tmp, 0); /* " buddy=c0,c1,..." */
    tmp[pos] = 0;
    const char *eq = strchr(tmp, '=');
    snprintf(out, cap, "%s", eq && eq[1] ? eq + 1 : "none");
}

static unsigned long long words[PAGEFLAGS_CHUNK];   /* one chunk of kpageflags (or pagemap) words */

/* Calls fn(pfn, arg) for every present page of [addr, addr + bytes), from /proc/self/pagemap (PFNs
   need CAP_SYS_ADMIN: the agent is root). 0, or -1 with errno. */
static int each_pfn(const unsigned char *addr, size_t bytes, void (*fn)(unsigned long long, void *), void *arg) {
    unsigned long long first = (uintptr_t)addr / PAGE, last = ((uintptr_t)addr + bytes - 1) / PAGE;
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    for (unsigned long long vpn = first; vpn <= last;) {
        unsigned long long n = last - vpn + 1 < PAGEFLAGS_CHUNK ? last - vpn + 1 : PAGEFLAGS_CHUNK;
        ssize_t r = pread(fd, words, n * 8, (off_t)(vpn * 8));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { int e = r < 0 ? errno : EIO; close(fd); errno = e; return -1; }
        for (size_t i = 0; i < (size_t)r / 8; i++)
            if (words[i] >> 63) fn(words[i] & ((1ULL << 55) - 1), arg);  /* bit 63: present; 0-54: PFN */
        vpn += (size_t)r / 8;
    }
    close(fd);
    return 0;
}

struct pfn_set { unsigned char *bits; unsigned long long end, count; };
static void pfn_max(unsigned long long pfn, void *arg) {
    struct pfn_set *s = arg;
    if (pfn + 1 > s->end) s->end = pfn + 1;
}
static void pfn_add(unsigned long long pfn, void *arg) {
    struct pfn_set *s = arg;
    if (pfn < s->end && !(s->bits[pfn >> 3] & (1 << (pfn & 7)))) { s->bits[pfn >> 3] |= 1 << (pfn & 7); s->count++; }
}

/* The buffer's frames as a bitmap by PFN: two passes over pagemap (the largest PFN, then the bits). */
static int ours_set(const unsigned char *addr, size_t bytes, struct pfn_set *s) {
    memset(s, 0, sizeof *s);
    if (each_pfn(addr, bytes, pfn_max, s) < 0) return -1;
    if (!s->end) return 0;
    s->bits = calloc(s->end / 8 + 1, 1);
    if (!s->bits) return -1;
    if (each_pfn(addr, bytes, pfn_add, s) < 0) { free(s->bits); s->bits = NULL; return -1; }
    return 0;
}

static void page_flags(long id, long t0, const unsigned char *ours, size_t ours_bytes) {
    char before[512], after[512], mem[8192];
    long long memfree = -1;
    if (read_file_at("/proc/meminfo", mem, sizeof mem) > 0) {
        char *m = strstr(mem, "MemFree:");
        if (m) memfree = strtoll(m + 8, NULL, 10);
    }
    struct pfn_set mine = {0};
    if (ours && ours_set(ours, ours_bytes, &mine) < 0)
        return reply(id, t0, "err", "/proc/self/pagemap: %s", strerror(errno));
    if (ours && mine.count && mine.end == 1)   /* every PFN read as 0: pagemap hides them without CAP_SYS_ADMIN */
        { free(mine.bits); return reply(id, t0, "err", "/proc/self/pagemap shows no PFNs (needs CAP_SYS_ADMIN)"); }
    int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
    if (fd < 0) { free(mine.bits); return reply(id, t0, "err", "/proc/kpageflags: %s", strerror(errno)); }
    buddy_totals(before, sizeof before);
    static struct pline pl;
    memset(&pl, 0, sizeof pl);
    pl.id = id;
    unsigned long long frames = 0, cur = 0, count = 0;
    struct timespec k0, k1;
    long long kernel_ns = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &k0);
        ssize_t r = pread(fd, words, sizeof words, (off_t)(frames * 8));
        clock_gettime(CLOCK_MONOTONIC, &k1);
        kernel_ns += (k1.tv_sec - k0.tv_sec) * 1000000000LL + (k1.tv_nsec - k0.tv_nsec);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            free(mine.bits);
            return reply(id, t0, "err", "/proc/kpageflags at frame %llu: %s", frames, strerror(e));
        }
        size_t n = (size_t)r / 8;
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            unsigned long long w = reduce_flags(words[i]), f = frames + i;
            if (f < mine.end && (mine.bits[f >> 3] & (1 << (f & 7)))) w |= PAGEFLAGS_OURS;
            if (count && w == cur) { count++; continue; }
            if (count) pline_run(&pl, cur, count);
            cur = w;
            count = 1;
        }
        frames += n;
        if (n < PAGEFLAGS_CHUNK) break;
    }
    close(fd);
    if (count) pline_run(&pl, cur, count);
    pline_flush(&pl);
    buddy_totals(after, sizeof after);
    free(mine.bits);
    char ours_s[48] = "";
    if (ours) snprintf(ours_s, sizeof ours_s, " ours_pages=%llu", mine.count);
    reply(id, t0, "ok", "frames=%llu runs=%lu lines=%lu read_ms=%ld kernel_ms=%lld memfree_kib=%lld before=%s after=%s%s",
          frames, pl.runs, pl.lines, now_ms() - t0, kernel_ns / 1000000, memfree, before, after, ours_s);
}

/* ---- autoMemoryReclaim observations (the host runs the policy, as WSL's init does in its guest) -- */

#define RECLAIM_PATH "/sys/fs/cgroup/memory.reclaim"

static long long meminfo_kib(const char *text, const char *key) {
    size_t k = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, key, k) && p[k] == ':') return strtoll(p + k + 1, NULL, 10);
    return -1;
}

static void observe(long id, long t0) {
    char stat[1024], mem[8192], psi[512], self[1024];
    static char vm[16384];
    unsigned long long c[8] = {0};
    if (read_file_at("/proc/stat", stat, sizeof stat) <= 0 ||
        sscanf(stat, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7]) < 4)
        return reply(id, t0, "err", "/proc/stat: no aggregate cpu line");
    if (read_file_at("/proc/meminfo", mem, sizeof mem) <= 0) return reply(id, t0, "err", "/proc/meminfo: %s", strerror(errno));
    unsigned long long ut = 0, st = 0, sut = 0, sst = 0;
    if (read_file_at("/proc/self/stat", self, sizeof self) > 0) {
        char *rp = strrchr(self, ')'); /* fields after comm: state(3) ... utime(14) stime(15) */
        if (rp) sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
    }
    char task[64];
    snprintf(task, sizeof task, "/proc/self/task/%ld/stat", sampler_tid);
    if (sampler_tid > 0 && read_file_at(task, self, sizeof self) > 0) {
        char *rp = strrchr(self, ')');
        if (rp) sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &sut, &sst);
    }
    char psi_s[32] = "none", ref_s[32] = "none";
    if (read_file_at("/proc/pressure/memory", psi, sizeof psi) > 0) {
        char *a = strstr(psi, "some avg10=");
        if (a) { double v = strtod(a + 11, NULL); snprintf(psi_s, sizeof psi_s, "%.2f", v); }
    }
    if (read_file_at("/proc/vmstat", vm, sizeof vm) > 0) {
        char *r = strstr(vm, "\nworkingset_refault_file ");
        if (r) snprintf(ref_s, sizeof ref_s, "%llu", strtoull(r + 25, NULL, 10));
    }
    reply(id, t0, "ok", "cpu=%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu own=%llu,%llu sampler=%llu,%llu mem_total=%lld mem_free=%lld cached=%lld "
          "active_file=%lld inactive_file=%lld sreclaimable=%lld psi_some_avg10=%s refault_file=%s",
          c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], ut, st, sut, sst, meminfo_kib(mem, "MemTotal"), meminfo_kib(mem, "MemFree"),
          meminfo_kib(mem, "Cached"), meminfo_kib(mem, "Active(file)"), meminfo_kib(mem, "Inactive(file)"),
          meminfo_kib(mem, "SReclaimable"), psi_s, ref_s);
}

/* ---- commands ---------------------------------------------------------------------------- */

static unsigned char *buffer;      /* alloc/touch/free */
static size_t buffer_bytes;
static unsigned char *frag;        /* fragment/unfragment */
static size_t frag_bytes;

/* The value written to page i and read back: the checksum depends on every touched page,
   so the compiler cannot drop the writes (a pitfall seen in the first trial). */
static unsigned char page_mark(size_t i) { return (unsigned char)(i % 251 + 1); }

static void reply(long id, long t0, const char *status, const char *fmt, ...) {
    char detail[4096] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    emit("A %ld %ld %ld %s%s%s", id, t0, now_ms(), status, detail[0] ? " " : "", detail);
}

static int under(const char *path, const char *prefix) {
    return strncmp(path, prefix, strlen(prefix)) == 0 && !strstr(path, "..");
}

static void run_command(char *line) {
    char *save = NULL;
    char *id_s = strtok_r(line, " ", &save);
    char *verb = strtok_r(NULL, " ", &save);
    char *arg = strtok_r(NULL, " ", &save);
    char *arg2 = strtok_r(NULL, "", &save);
    if (!id_s || !verb) return;
    long id = strtol(id_s, NULL, 10);
    long t0 = now_ms();

    if (!strcmp(verb, "alloc")) {
        if (buffer) return reply(id, t0, "err", "already holding %zu bytes; free first", buffer_bytes);
        size_t n = arg ? strtoull(arg, NULL, 10) : 0;
        if (!n) return reply(id, t0, "err", "alloc needs a size in bytes");
        buffer = calloc(1, n);
        if (!buffer) return reply(id, t0, "err", "calloc(%zu) failed: %s", n, strerror(errno));
        buffer_bytes = n;
        return reply(id, t0, "ok", "bytes=%zu", n);
    }
    if (!strcmp(verb, "touch")) {
        if (!buffer) return reply(id, t0, "err", "nothing allocated; alloc first");
        volatile unsigned char *p = buffer;
        size_t pages = (buffer_bytes + PAGE - 1) / PAGE;
        unsigned long long sum = 0;
        for (size_t i = 0; i < pages; i++) p[i * PAGE] = page_mark(i);
        for (size_t i = 0; i < pages; i++) sum += p[i * PAGE];
        return reply(id, t0, "ok", "pages=%zu checksum=%llu", pages, sum);
    }
    if (!strcmp(verb, "free")) {
        if (!buffer) return reply(id, t0, "err", "nothing allocated");
        free(buffer);
        buffer = NULL;
        size_t n = buffer_bytes;
        buffer_bytes = 0;
        return reply(id, t0, "ok", "bytes=%zu", n);
    }
    if (!strcmp(verb, "fragment")) {
        if (frag) return reply(id, t0, "err", "already fragmented; unfragment first");
        size_t n = arg ? strtoull(arg, NULL, 10) & ~(PAGE - 1) : 0;
        if (!n) return reply(id, t0, "err", "fragment needs a size in bytes");
        size_t keep_every = FRAG_KEEP_EVERY;
        if (arg2 && *arg2) {
            keep_every = strtoull(arg2, NULL, 10);
            if (keep_every < 2 || keep_every > 4096)
                return reply(id, t0, "err", "fragment: keep one page in k needs 2 <= k <= 4096");
        }
        unsigned char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return reply(id, t0, "err", "mmap(%zu) failed: %s", n, strerror(errno));
        madvise(m, n, MADV_NOHUGEPAGE); /* 4 KiB pages, so the freed ones leave holes */
        volatile unsigned char *p = m;
        size_t pages = n / PAGE, held = 0;
        unsigned long long sum = 0;
        for (size_t i = 0; i < pages; i++) p[i * PAGE] = page_mark(i);
        /* Keep one page in FRAG_KEEP_EVERY. Not one in two: after empty pageblocks compaction's
           free scanner samples pfns with a power-of-two stride (up to 32), and with every other
           page held it can land on held pfns only, find no free page and compact nothing
           (measured: about half of the boots). A period of 3 cannot stay out of phase. */
        for (size_t i = 0; i + 1 < pages; i += keep_every) {
            size_t run = pages - i - 1 < keep_every - 1 ? pages - i - 1 : keep_every - 1;
            madvise(m + (i + 1) * PAGE, run * PAGE, MADV_DONTNEED);
        }
        for (size_t i = 0; i < pages; i += keep_every, held++) sum += p[i * PAGE];
        frag = m;
        frag_bytes = n;
        return reply(id, t0, "ok", "pages=%zu held_pages=%zu checksum=%llu", pages, held, sum);
    }
    if (!strcmp(verb, "unfragment")) {
        if (!frag) return reply(id, t0, "err", "nothing fragmented");
        munmap(frag, frag_bytes);
        size_t n = frag_bytes;
        frag = NULL;
        frag_bytes = 0;
        return reply(id, t0, "ok", "bytes=%zu", n);
    }
    if (!strcmp(verb, "write_file")) {
        size_t n = arg ? strtoull(arg, NULL, 10) : 0;
        int fd = open(DATA_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) return reply(id, t0, "err", "cannot open %s: %s (is the disk mounted?)", DATA_FILE, strerror(errno));
        static unsigned char chunk[1 << 20];
        for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (unsigned char)(i * 7 + 1);
        size_t done = 0;
        while (done < n) {
            size_t want = n - done < sizeof chunk ? n - done : sizeof chunk;
            ssize_t w = write(fd, chunk, want);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                int e = errno;
                close(fd);
                return reply(id, t0, "err", "write failed after %zu bytes: %s", done, strerror(e));
            }
            done += w;
        }
        close(fd);
        return reply(id, t0, "ok", "bytes=%zu", done);
    }
    if (!strcmp(verb, "read_file")) {
        int fd = open(DATA_FILE, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return reply(id, t0, "err", "cannot open %s: %s", DATA_FILE, strerror(errno));
        static unsigned char chunk[1 << 20];
        unsigned long long sum = 0;
        size_t total = 0;
        ssize_t r;
        while ((r = read(fd, chunk, sizeof chunk)) > 0) {
            for (ssize_t i = 0; i < r; i += PAGE) sum += chunk[i];
            total += r;
        }
        close(fd);
        return reply(id, t0, "ok", "bytes=%zu checksum=%llu", total, sum);
    }
    if (!strcmp(verb, "rm_file")) {
        if (unlink(DATA_FILE) < 0 && errno != ENOENT)
            return reply(id, t0, "err", "unlink: %s", strerror(errno));
        return reply(id, t0, "ok", "");
    }
    if (!strcmp(verb, "sync")) {
        sync();
        return reply(id, t0, "ok", "");
    }
    if (!strcmp(verb, "drop_caches")) {
        const char *level = arg ? arg : "3";
        if (strcmp(level, "1") && strcmp(level, "2") && strcmp(level, "3"))
            return reply(id, t0, "err", "drop_caches takes 1, 2 or 3");
        sync();
        if (write_text("/proc/sys/vm/drop_caches", level) < 0)
            return reply(id, t0, "err", "drop_caches: %s", strerror(errno));
        return reply(id, t0, "ok", "level=%s", level);
    }
    if (!strcmp(verb, "compact")) {
        if (write_text("/proc/sys/vm/compact_memory", "1") < 0)
            return reply(id, t0, "err", "compact_memory: %s", strerror(errno));
        return reply(id, t0, "ok", "");
    }
    if (!strcmp(verb, "reclaim")) {
        char request[96];
        unsigned long long n = arg ? strtoull(arg, NULL, 10) : 0;
        if (!n) return reply(id, t0, "err", "reclaim needs a size in bytes");
        if (arg2 && *arg2) {
            int sw = atoi(arg2);
            if (sw < 0 || sw > 200) return reply(id, t0, "err", "reclaim: swappiness must be 0..200");
            snprintf(request, sizeof request, "%llu swappiness=%d", n, sw);
        } else {
            snprintf(request, sizeof request, "%llu", n);
        }
        int ok = write_text(RECLAIM_PATH, request) == 0;
        int e = errno;
        for (char *c = request; *c; c++) if (*c == ' ') *c = '_';
        if (ok) return reply(id, t0, "ok", "request=%s eagain=0", request);
        if (e == EAGAIN) return reply(id, t0, "ok", "request=%s eagain=1", request);
        return reply(id, t0, "err", "%s %s: %s (errno=%d)", RECLAIM_PATH, request, strerror(e), e);
    }
    if (!strcmp(verb, "observe")) return observe(id, t0);
    if (!strcmp(verb, "set")) {
        if (!arg || !arg2) return reply(id, t0, "err", "set needs a path and a value");
        if (!under(arg, "/proc/sys/") && !under(arg, "/sys/"))
            return reply(id, t0, "err", "set only writes under /proc/sys/ or /sys/");
        if (write_text(arg, arg2) < 0) return reply(id, t0, "err", "%s: %s", arg, strerror(errno));
        return reply(id, t0, "ok", "");
    }
    if (!strcmp(verb, "get")) {
        char buf[3072]; /* /proc/meminfo fits; the ack line is capped at 8 KiB */
        if (!arg || (!under(arg, "/proc/") && !under(arg, "/sys/")))
            return reply(id, t0, "err", "get only reads under /proc/ or /sys/");
        if (read_file_at(arg, buf, sizeof buf) < 0) return reply(id, t0, "err", "%s: %s", arg, strerror(errno));
        for (char *c = buf; *c; c++) if (*c == ' ' || *c == '\n' || *c == '\t') *c = '_';
        size_t len = strlen(buf);
        while (len && buf[len - 1] == '_') buf[--len] = 0;
        return reply(id, t0, "ok", "value=%s", buf);
    }
    if (!strcmp(verb, "snapshot")) {
        char out[2048];
        int pos = append(out, 0, sizeof out, "B %ld %s ", now_ms(), arg ? arg : "-");
        buddyinfo(out, pos, sizeof out, 1);
        emit("%s", out);
        return reply(id, t0, "ok", "");
    }
    if (!strcmp(verb, "pageflags")) {
        if (!arg) return page_flags(id, t0, NULL, 0);
        if (strcmp(arg, "ours")) return reply(id, t0, "err", "pageflags takes nothing or 'ours'");
        if (!buffer) return reply(id, t0, "err", "pageflags ours: nothing allocated; alloc first");
        return page_flags(id, t0, buffer, buffer_bytes);
    }
    if (!strcmp(verb, "rate")) {
        int hz = arg ? atoi(arg) : 0;
        if (hz < 1 || hz > 50) return reply(id, t0, "err", "rate takes 1..50 samples per second");
        sample_hz = hz;
        return reply(id, t0, "ok", "hz=%d", hz);
    }
    if (!strcmp(verb, "quit")) {
        reply(id, t0, "ok", "");
        sync();
        reboot(RB_POWER_OFF);
        _exit(0);
    }
    reply(id, t0, "err", "unknown command %s", verb);
}

static void hello(void) {
    struct utsname u;
    char order[64] = "none", thp[128] = "unknown";
    uname(&u);
    if (read_file_at("/sys/module/page_reporting/parameters/page_reporting_order", order, sizeof order) > 0)
        order[strcspn(order, "\n")] = 0;
    if (read_file_at("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof thp) > 0) {
        char *a = strchr(thp, '['), *b = a ? strchr(a, ']') : NULL;
        if (a && b) { *b = 0; memmove(thp, a + 1, strlen(a + 1) + 1); }
        else thp[strcspn(thp, "\n")] = 0;
    }
    int disk = access("/mnt/lost+found", F_OK) == 0;
    emit("H %ld version=1 kernel=%s page_size=%ld page_reporting_order=%s disk=%s thp=%s",
         now_ms(), u.release, sysconf(_SC_PAGESIZE), order, disk ? "yes" : "no", thp);
}

int main(int argc, char **argv) {
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (argc != 2) {
        fprintf(stderr, "usage: agent /dev/vportNpM\n");
        return 2;
    }
    chan = open(argv[1], O_RDWR | O_CLOEXEC);
    if (chan < 0) {
        fprintf(stderr, "agent: cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    hello();
    pthread_t t;
    pthread_create(&t, NULL, sampler, NULL);

    char buf[4096];
    size_t have = 0;
    int eofs = 0;
    for (;;) {
        ssize_t r = read(chan, buf + have, sizeof buf - 1 - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            /* virtio-serial reads 0 while the host end is closed. Allow a moment for a
               reconnect, then stop the guest: nobody is listening any more. No goodbye line:
               writes block while the host is away, and the sampler may hold the lock in one. */
            if (++eofs >= 10) {
                sync();
                reboot(RB_POWER_OFF);
                return 0;
            }
            usleep(100000);
            continue;
        }
        eofs = 0;
        have += r;
        buf[have] = 0;
        char *start_of_line = buf, *nl;
        while ((nl = strchr(start_of_line, '\n'))) {
            *nl = 0;
            if (nl > start_of_line) run_command(start_of_line);
            start_of_line = nl + 1;
        }
        have = strlen(start_of_line);
        memmove(buf, start_of_line, have);
        if (have >= sizeof buf - 1) have = 0; /* a line longer than any command: drop it */
    }
}
