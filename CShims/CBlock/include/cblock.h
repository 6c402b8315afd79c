#ifndef OASIS_CBLOCK_H
#define OASIS_CBLOCK_H
/* Linux native AIO and block-device ioctls for OasisDevices' FileBlockDevice: only
 * what Swift cannot call itself. glibc has no wrappers for io_setup and friends (libaio
 * does; we make the system calls), `syscall` and `ioctl` are variadic, and the ioctl
 * numbers are _IOR/_IO macros Swift does not import. Every call returns the result, or
 * -errno on failure (no global errno to read afterwards). */
#include <linux/aio_abi.h>
#include <stdint.h>
#include <sys/uio.h>

/* io_setup(events, &context). */
int oasis_io_setup(unsigned events, aio_context_t *context);
/* io_destroy(context): waits for the requests in flight. */
int oasis_io_destroy(aio_context_t context);
/* io_submit(context, count, iocbs): how many were queued (the first `result` of them). */
long oasis_io_submit(aio_context_t context, long count, struct iocb **iocbs);
/* io_getevents(context, 0, count, events, {0, 0}): the completions ready now, without
 * waiting. */
long oasis_io_getevents(aio_context_t context, long count, struct io_event *events);

/* open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | (direct ? O_DIRECT : 0)
 *      | (create ? O_CREAT : 0), 0644). */
int oasis_block_open(const char *path, int writable, int direct, int create);
/* ioctl(fd, BLKGETSIZE64, bytes). */
int oasis_block_size(int fd, uint64_t *bytes);
/* ioctl(fd, BLKSSZGET, size): the logical sector size. */
int oasis_block_sector_size(int fd, int *size);
/* ioctl(fd, BLKDISCARD, {start, length}). */
int oasis_block_discard(int fd, uint64_t start, uint64_t length);
/* fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length). */
int oasis_punch_hole(int fd, uint64_t offset, uint64_t length);
/* statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN): O_DIRECT's alignment of memory and of
 * file offsets and lengths; -EOPNOTSUPP when the kernel or filesystem does not say. */
int oasis_direct_alignment(int fd, uint32_t *memory, uint32_t *offset);
/* fdatasync(fd). */
int oasis_fdatasync(int fd);
/* ftruncate(fd, length). */
int oasis_ftruncate(int fd, uint64_t length);
#endif
