/* tests/integration/deny_syscall.c: run a command with one system call
 * failing, as a container's seccomp profile makes it fail.
 *
 *   usage: deny_syscall NR ERRNO COMMAND [ARG...]
 *
 * Installs a seccomp filter (after PR_SET_NO_NEW_PRIVS, so no privilege is
 * needed) under which system call number NR returns -ERRNO, then executes
 * COMMAND. Docker's default profile does this to io_uring_setup (EPERM);
 * test_operator.py checks what ringfill says then. x86-64 only. Exit 127 if
 * the filter or the exec fails, 2 on bad usage. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: deny_syscall NR ERRNO COMMAND [ARG...]\n");
		return 2;
	}
	unsigned nr = (unsigned)strtoul(argv[1], NULL, 10);
	unsigned err = (unsigned)strtoul(argv[2], NULL, 10);
	if (err == 0 || err > 4095) {
		fprintf(stderr, "deny_syscall: ERRNO must be 1..4095\n");
		return 2;
	}
	struct sock_filter filter[] = {
		/* Another architecture's calls have other numbers: allow them. */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		fprintf(stderr, "deny_syscall: seccomp: %s\n", strerror(errno));
		return 127;
	}
	execvp(argv[3], argv + 3);
	fprintf(stderr, "deny_syscall: %s: %s\n", argv[3], strerror(errno));
	return 127;
}
