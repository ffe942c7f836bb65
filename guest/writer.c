/*
 * Ferry's guest writer: the honest oracle for "no guest write is lost during
 * a live disk move".
 *
 * It writes numbered, checksummed blocks to a region of the VM's disk, one
 * at a time with O_DIRECT and fdatasync, and reports each write on the
 * serial console only after the disk acknowledged it. Whatever the host does
 * to the block graph meanwhile, every block reported here must be found on
 * the disk afterwards (ferry-testkit's guest module checks that).
 *
 * Configuration, from the kernel command line:
 *   ferry.dev=/dev/vda   block device (default /dev/vda)
 *   ferry.offset=BYTES   start of the region it may write (required)
 *   ferry.len=BYTES      length of that region (required); the rest of the
 *                        disk is never touched, tests keep other data there
 *   ferry.bs=BYTES       block size (default 4096, a multiple of 512)
 *   ferry.seed=U64       distinguishes runs (default 0)
 *   ferry.rate=N         writes per second, 0 = as fast as possible (default)
 *   ferry.busy_ms=N      with ferry.quiet_ms: write for N ms, then rest
 *   ferry.quiet_ms=M     for M ms, and again (default 0: never rest), the
 *                        shape of a guest whose I/O comes in bursts
 *
 * Block layout (all integers little-endian):
 *   0..8    magic "FERRYWR1"
 *   8..16   seq, 1, 2, 3, ...
 *   16..24  byte offset of this block on the disk
 *   24..32  seed
 *   32..40  FNV-1a 64 of bytes 0..32 followed by bytes 40..bs
 *   40..bs  payload: splitmix64 stream seeded by (seed, seq, offset)
 * Block seq goes to slot (seq - 1) % (len / bs), at offset + slot * bs.
 *
 * Console lines (one write(2) each, so they are never split by buffering):
 *   FERRY-READY <dev> <offset> <len> <bs> <seed>
 *   FERRY-ACK <seq> <offset> <t_start_us> <latency_us>
 *   FERRY-ERR <seq> <text>        (seq 0: setup failed, the writer exits)
 * Times are CLOCK_MONOTONIC microseconds; t_start_us counts from the writer's
 * start, leaving out its rests (ferry.quiet_ms), so a gap between two acks
 * is always time it wanted to write; latency_us is the duration of pwrite +
 * fdatasync. A failed write is
 * retried after 100 ms; its ACK carries the start of the attempt that
 * succeeded, so the failed attempts show up as a gap before it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define HEADER_LEN 40
#define MAX_CMDLINE 4096

struct config {
	char dev[256];
	uint64_t offset;
	uint64_t len;
	uint64_t bs;
	uint64_t seed;
	uint64_t rate;
	uint64_t busy_ms;
	uint64_t quiet_ms;
	int have_offset;
	int have_len;
};

/* Writes one whole line to the console, retrying partial writes. */
static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = (int)(sizeof line - 2);
	line[n++] = '\n';
	const char *p = line;
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, (size_t)n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (int)w;
	}
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000u),
			       .tv_nsec = (long)(us % 1000000u) * 1000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_block(unsigned char *b, uint64_t bs, uint64_t seq,
		       uint64_t offset, uint64_t seed)
{
	memcpy(b, "FERRYWR1", 8);
	put_u64(b + 8, seq);
	put_u64(b + 16, offset);
	put_u64(b + 24, seed);
	uint64_t state = seed ^ (seq * 0x9e3779b97f4a7c15ull) ^
			 (offset * 0xc2b2ae3d27d4eb4full);
	for (uint64_t i = HEADER_LEN; i < bs; i += 8)
		put_u64(b + i, splitmix64(&state));
	uint64_t h = fnv1a(0xcbf29ce484222325ull, b, 32);
	h = fnv1a(h, b + HEADER_LEN, (size_t)(bs - HEADER_LEN));
	put_u64(b + 32, h);
}

/* Parses a decimal or 0x-prefixed u64; returns 0 on malformed input. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (*s == '\0' || *s == '-')
		return 0;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0')
		return 0;
	*out = (uint64_t)v;
	return 1;
}

static void fail(const char *fmt, ...)
{
	char text[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	say("FERRY-ERR 0 %s", text);
	exit(1);
}

static void read_config(struct config *c)
{
	static char cmdline[MAX_CMDLINE];
	memset(c, 0, sizeof *c);
	strcpy(c->dev, "/dev/vda");
	c->bs = 4096;

	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("cannot open /proc/cmdline: %s", strerror(errno));
	ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
	close(fd);
	if (n < 0)
		fail("cannot read /proc/cmdline: %s", strerror(errno));
	cmdline[n] = '\0';

	char *save = NULL;
	for (char *tok = strtok_r(cmdline, " \t\n", &save); tok;
	     tok = strtok_r(NULL, " \t\n", &save)) {
		if (strncmp(tok, "ferry.", 6) != 0)
			continue;
		char *eq = strchr(tok, '=');
		if (!eq)
			fail("malformed kernel argument %s", tok);
		*eq = '\0';
		const char *key = tok + 6, *val = eq + 1;
		uint64_t v = 0;
		if (strcmp(key, "dev") == 0) {
			if (strlen(val) >= sizeof c->dev)
				fail("ferry.dev is too long");
			strcpy(c->dev, val);
			continue;
		}
		if (!parse_u64(val, &v))
			fail("ferry.%s=%s is not a number", key, val);
		if (strcmp(key, "offset") == 0) {
			c->offset = v;
			c->have_offset = 1;
		} else if (strcmp(key, "len") == 0) {
			c->len = v;
			c->have_len = 1;
		} else if (strcmp(key, "bs") == 0) {
			c->bs = v;
		} else if (strcmp(key, "seed") == 0) {
			c->seed = v;
		} else if (strcmp(key, "rate") == 0) {
			c->rate = v;
		} else if (strcmp(key, "busy_ms") == 0) {
			c->busy_ms = v;
		} else if (strcmp(key, "quiet_ms") == 0) {
			c->quiet_ms = v;
		} else {
			fail("unknown kernel argument ferry.%s", key);
		}
	}
	if (!c->have_offset || !c->have_len)
		fail("ferry.offset and ferry.len are required");
	if (c->bs < 512 || c->bs % 512 != 0 || c->bs > (1u << 24))
		fail("ferry.bs=%" PRIu64 " is not a multiple of 512 up to 16 MiB",
		     c->bs);
	if (c->offset % c->bs != 0 || c->len % c->bs != 0 || c->len == 0)
		fail("ferry.offset and ferry.len must be non-zero multiples of ferry.bs");
	if (c->rate > 1000000)
		fail("ferry.rate=%" PRIu64 " is above 1000000", c->rate);
	if ((c->busy_ms == 0) != (c->quiet_ms == 0))
		fail("ferry.busy_ms and ferry.quiet_ms go together, both above 0");
	if (c->busy_ms > 3600000 || c->quiet_ms > 3600000)
		fail("ferry.busy_ms and ferry.quiet_ms are at most an hour");
}

int main(void)
{
	struct config c;
	uint64_t t0 = now_us();
	read_config(&c);

	int fd = open(c.dev, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		fail("cannot open %s: %s", c.dev, strerror(errno));
	uint64_t size = 0;
	if (ioctl(fd, BLKGETSIZE64, &size) != 0)
		fail("cannot size %s: %s", c.dev, strerror(errno));
	if (c.offset > size || c.len > size - c.offset)
		fail("region %" PRIu64 "+%" PRIu64 " is beyond the end of %s (%" PRIu64
		     " bytes)",
		     c.offset, c.len, c.dev, size);

	unsigned char *block;
	if (posix_memalign((void **)&block, 4096, (size_t)c.bs) != 0)
		fail("cannot allocate a %" PRIu64 " byte buffer", c.bs);

	uint64_t slots = c.len / c.bs;
	uint64_t interval = c.rate ? 1000000u / c.rate : 0;
	uint64_t next = now_us();
	/* The rests so far, left out of t_start_us; the end of this burst. */
	uint64_t rested = 0;
	uint64_t busy_until = next + c.busy_ms * 1000u;
	say("FERRY-READY %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, c.dev,
	    c.offset, c.len, c.bs, c.seed);

	for (uint64_t seq = 1;; seq++) {
		if (c.busy_ms && now_us() >= busy_until) {
			uint64_t before = now_us();
			sleep_us(c.quiet_ms * 1000u);
			uint64_t after = now_us();
			rested += after - before;
			busy_until = after + c.busy_ms * 1000u;
			next = after;
		}
		if (interval) {
			uint64_t now = now_us();
			if (now < next)
				sleep_us(next - now);
			/* Do not burst to catch up after a stall. */
			next = (now > next + interval ? now : next) + interval;
		}
		uint64_t off = c.offset + ((seq - 1) % slots) * c.bs;
		fill_block(block, c.bs, seq, off, c.seed);
		for (;;) {
			uint64_t start = now_us();
			ssize_t w = pwrite(fd, block, (size_t)c.bs, (off_t)off);
			if (w == (ssize_t)c.bs && fdatasync(fd) == 0) {
				uint64_t end = now_us();
				say("FERRY-ACK %" PRIu64 " %" PRIu64 " %" PRIu64
				    " %" PRIu64,
				    seq, off, start - t0 - rested, end - start);
				break;
			}
			if (w >= 0 && w != (ssize_t)c.bs)
				say("FERRY-ERR %" PRIu64 " short write of %zd bytes",
				    seq, w);
			else
				say("FERRY-ERR %" PRIu64 " %s", seq, strerror(errno));
			sleep_us(100000);
		}
	}
}
