/* bench/rf_bench_exec.c: `rf_bench_exec OUT PROG [ARG...]` runs PROG (a path,
 * no shell, no PATH search) with the launcher's stdin/stdout/stderr, waits
 * with wait4, and writes PROG's wall time and rusage to OUT as one JSON
 * object. bench/netbench.py runs every measured client (ringfill, curl, the
 * Python importer) through it.
 *
 * Why a launcher: a child's ru_maxrss is at least the high-water RSS of the
 * address space it replaced at exec. A child spawned with vfork semantics
 * (posix_spawn, Python's subprocess) replaces its parent's address space, so
 * a big parent (a Python driver that generated a gigabyte of files) would
 * show as the child's peak. This launcher is small and fork()s, so the
 * measured program inherits at most the launcher's own ~1-2 MB. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: rf_bench_exec OUT PROG [ARG...]\n");
		return 2;
	}
	double t0 = now_s();
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "rf_bench_exec: fork: %s\n", strerror(errno));
		return 2;
	}
	if (pid == 0) {
		execv(argv[2], argv + 2);
		fprintf(stderr, "rf_bench_exec: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	int status = 0;
	struct rusage ru;
	pid_t got;
	do
		got = wait4(pid, &status, 0, &ru);
	while (got < 0 && errno == EINTR);
	double wall_s = now_s() - t0;
	if (got < 0) {
		fprintf(stderr, "rf_bench_exec: wait4: %s\n", strerror(errno));
		return 2;
	}
	FILE *f = fopen(argv[1], "w");
	if (!f) {
		fprintf(stderr, "rf_bench_exec: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	fprintf(f,
	        "{\"exit\": %d, \"signal\": %d, \"wall_s\": %.6f, \"utime_s\": %.6f, "
	        "\"stime_s\": %.6f, \"maxrss_kb\": %ld}\n",
	        WIFEXITED(status) ? WEXITSTATUS(status) : -1,
	        WIFSIGNALED(status) ? WTERMSIG(status) : 0, wall_s, tv_s(ru.ru_utime),
	        tv_s(ru.ru_stime), ru.ru_maxrss);
	if (fclose(f) != 0)
		return 2;
	return 0;
}
