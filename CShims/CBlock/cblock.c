#define _GNU_SOURCE
#include "cblock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long result(long value) { return value < 0 ? -errno : value; }

int oasis_io_setup(unsigned events, aio_context_t *context) {
    *context = 0;
    return (int)result(syscall(SYS_io_setup, events, context));
}

int oasis_io_destroy(aio_context_t context) {
    return (int)result(syscall(SYS_io_destroy, context));
}

long oasis_io_submit(aio_context_t context, long count, struct iocb **iocbs) {
    return result(syscall(SYS_io_submit, context, count, iocbs));
}

long oasis_io_getevents(aio_context_t context, long count, struct io_event *events) {
    struct timespec none = {0, 0};
    return result(syscall(SYS_io_getevents, context, 0L, count, events, &none));
}

int oasis_block_open(const char *path, int writable, int direct, int create) {
    int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    if (direct) flags |= O_DIRECT;
    if (create) flags |= O_CREAT;
    return (int)result(open(path, flags, 0644));
}

int oasis_block_size(int fd, uint64_t *bytes) {
    return (int)result(ioctl(fd, BLKGETSIZE64, bytes));
}

int oasis_block_sector_size(int fd, int *size) {
    return (int)result(ioctl(fd, BLKSSZGET, size));
}

int oasis_block_discard(int fd, uint64_t start, uint64_t length) {
    uint64_t range[2] = {start, length};
    return (int)result(ioctl(fd, BLKDISCARD, range));
}

int oasis_punch_hole(int fd, uint64_t offset, uint64_t length) {
    return (int)result(
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length));
}

int oasis_direct_alignment(int fd, uint32_t *memory, uint32_t *offset) {
#ifdef STATX_DIOALIGN
    struct statx info;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &info) < 0) return -errno;
    if (!(info.stx_mask & STATX_DIOALIGN) || info.stx_dio_offset_align == 0) return -EOPNOTSUPP;
    *memory = info.stx_dio_mem_align;
    *offset = info.stx_dio_offset_align;
    return 0;
#else
    (void)fd;
    (void)memory;
    (void)offset;
    return -EOPNOTSUPP;
#endif
}

int oasis_fdatasync(int fd) { return (int)result(fdatasync(fd)); }

int oasis_ftruncate(int fd, uint64_t length) { return (int)result(ftruncate(fd, (off_t)length)); }
