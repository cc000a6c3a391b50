/* LD_PRELOAD shim (review r2): BPF_LINK_CREATE with BPF_TRACE_UPROBE_SESSION fails with
 * EINVAL, as on a kernel (or under a policy) that refuses uprobe sessions. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <string.h>
long syscall(long n, ...)
{
	va_list ap; long a[6];
	va_start(ap, n); for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long); va_end(ap);
	if (n == __NR_bpf && a[0] == BPF_LINK_CREATE) {
		const __u32 *attr = (const __u32 *)a[1];
		if (attr[2] == 57) { errno = EINVAL; return -1; } /* attach_type: BPF_TRACE_UPROBE_SESSION */
	}
	long (*real)(long, ...) = dlsym(RTLD_NEXT, "syscall");
	return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
