/*
 * secondsite_native: the sparse-file primitives Node's fs lacks, in plain N-API C.
 *
 *   seekData(fd, offset) -> number   lseek(SEEK_DATA); -1 when there is no data at or after offset (ENXIO)
 *   seekHole(fd, offset) -> number   lseek(SEEK_HOLE); the file size when offset is at or past EOF (ENXIO)
 *   punchHole(fd, offset, length) -> Promise<void>   fallocate(PUNCH_HOLE | KEEP_SIZE)
 *   zeroRange(fd, offset, length) -> Promise<void>   fallocate(ZERO_RANGE | KEEP_SIZE), falling back to
 *                                                    punch hole where ZERO_RANGE is not supported
 *   pwriteBatch(fd, buffers, offsets) -> Promise<number[]>
 *                                    one pwrite per buffer at its offset, in array order, as ONE piece of
 *                                    async work; per write 0 (all bytes written) or -errno. Node's fs
 *                                    costs one thread-pool hand-off per write; scattered small writes
 *                                    (random 4 KiB at queue depth 32) spent most of the event loop there.
 *                                    The buffers are referenced until the promise settles.
 *   preadBatch(fd, buffers, offsets) -> Promise<number[]>
 *                                    the same for preads: per read the bytes read (short only at end of
 *                                    file) or -errno.
 *
 * lseek on SEEK_DATA/SEEK_HOLE only walks the extent tree and is run synchronously. fallocate can wait on
 * the journal and on writeback of the range, so it runs as async work on the libuv thread pool and
 * returns a promise. Errors become JS Errors whose `code` is the errno name (EOPNOTSUPP, ENOSPC, ...)
 * and whose `errno` is the number, like Node's own fs errors.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <node_api.h>

#include "errno_name.h"

#define CHECK(env, call)                                       \
  do {                                                         \
    if ((call) != napi_ok) {                                   \
      napi_throw_error((env), NULL, "secondsite_native: " #call " failed"); \
      return NULL;                                             \
    }                                                          \
  } while (0)

static napi_value make_errno_error(napi_env env, int err, const char *syscall) {
  char message[256];
  const char *name = secondsite_errno_name(err);
  snprintf(message, sizeof message, "%s: %s failed: %s", name, syscall, strerror(err));
  napi_value code, msg, error, errno_value, syscall_value;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -err, &errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  return error;
}

static void throw_errno(napi_env env, int err, const char *syscall) {
  napi_throw(env, make_errno_error(env, err, syscall));
}

/* Reads argument i as a non-negative integer that fits exactly in a double (<= 2^53). */
static int get_int64_arg(napi_env env, napi_value *argv, size_t argc, size_t i, const char *what,
                         int64_t *out) {
  napi_valuetype type;
  double value;
  if (i >= argc || napi_typeof(env, argv[i], &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, argv[i], &value) != napi_ok || value < 0 ||
      value > 9007199254740991.0 || value != (double)(int64_t)value) {
    char message[128];
    snprintf(message, sizeof message, "secondsite_native: %s must be a non-negative safe integer", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return 0;
  }
  *out = (int64_t)value;
  return 1;
}

static napi_value seek_common(napi_env env, napi_callback_info info, int whence) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t fd, offset;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!get_int64_arg(env, argv, argc, 0, "fd", &fd)) return NULL;
  if (!get_int64_arg(env, argv, argc, 1, "offset", &offset)) return NULL;
  off_t result = lseek((int)fd, (off_t)offset, whence);
  if (result < 0) {
    int err = errno;
    if (err != ENXIO) {
      throw_errno(env, err, whence == SEEK_DATA ? "lseek(SEEK_DATA)" : "lseek(SEEK_HOLE)");
      return NULL;
    }
    if (whence == SEEK_DATA) {
      result = -1;
    } else {
      struct stat st;
      if (fstat((int)fd, &st) != 0) {
        throw_errno(env, errno, "fstat");
        return NULL;
      }
      result = st.st_size;
    }
  }
  napi_value out;
  CHECK(env, napi_create_double(env, (double)result, &out));
  return out;
}

static napi_value seek_data(napi_env env, napi_callback_info info) { return seek_common(env, info, SEEK_DATA); }
static napi_value seek_hole(napi_env env, napi_callback_info info) { return seek_common(env, info, SEEK_HOLE); }

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int zero_range;
  int64_t offset;
  int64_t length;
  int err;
  const char *syscall;
} fallocate_job;

static void fallocate_execute(napi_env env, void *data) {
  (void)env;
  fallocate_job *job = data;
  job->err = 0;
  if (job->length == 0) return;
  int rc;
  if (job->zero_range) {
    do {
      rc = fallocate(job->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, job->offset, job->length);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) return;
    if (errno != EOPNOTSUPP && errno != ENOSYS) {
      job->err = errno;
      job->syscall = "fallocate(ZERO_RANGE)";
      return;
    }
  }
  do {
    rc = fallocate(job->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, job->offset, job->length);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    job->err = errno;
    job->syscall = "fallocate(PUNCH_HOLE)";
  }
}

static void fallocate_complete(napi_env env, napi_status status, void *data) {
  fallocate_job *job = data;
  if (status != napi_ok) {
    napi_value msg, error;
    napi_create_string_utf8(env, "secondsite_native: fallocate work was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &error);
    napi_reject_deferred(env, job->deferred, error);
  } else if (job->err != 0) {
    napi_reject_deferred(env, job->deferred, make_errno_error(env, job->err, job->syscall));
  } else {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, job->deferred, undefined);
  }
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value fallocate_common(napi_env env, napi_callback_info info, int zero_range) {
  size_t argc = 3;
  napi_value argv[3];
  int64_t fd, offset, length;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!get_int64_arg(env, argv, argc, 0, "fd", &fd)) return NULL;
  if (!get_int64_arg(env, argv, argc, 1, "offset", &offset)) return NULL;
  if (!get_int64_arg(env, argv, argc, 2, "length", &length)) return NULL;
  fallocate_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    throw_errno(env, ENOMEM, "calloc");
    return NULL;
  }
  job->fd = (int)fd;
  job->offset = offset;
  job->length = length;
  job->zero_range = zero_range;
  napi_value promise, resource_name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    free(job);
    napi_throw_error(env, NULL, "secondsite_native: napi_create_promise failed");
    return NULL;
  }
  napi_create_string_utf8(env, zero_range ? "secondsite.zeroRange" : "secondsite.punchHole", NAPI_AUTO_LENGTH,
                          &resource_name);
  if (napi_create_async_work(env, NULL, resource_name, fallocate_execute, fallocate_complete, job, &job->work) !=
          napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    napi_throw_error(env, NULL, "secondsite_native: could not queue fallocate work");
    return NULL;
  }
  return promise;
}

static napi_value punch_hole(napi_env env, napi_callback_info info) { return fallocate_common(env, info, 0); }
static napi_value zero_range(napi_env env, napi_callback_info info) { return fallocate_common(env, info, 1); }

#define IO_BATCH_MAX 1024

/* A batch of preads or pwrites, one per buffer at its own offset, run as one piece of async work. */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int is_write;
  uint32_t count;
  struct {
    napi_ref ref;
    char *data;
    size_t length;
    int64_t offset;
    int64_t result; /* bytes transferred, or -errno */
  } items[];
} io_batch_job;

/* One item: a write loops until every byte is written; a read until the length or EOF. */
static int64_t io_batch_item(int fd, int is_write, char *data, size_t length, int64_t offset) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = is_write ? pwrite(fd, data + done, length - done, (off_t)(offset + (int64_t)done))
                         : pread(fd, data + done, length - done, (off_t)(offset + (int64_t)done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -(int64_t)errno;
    }
    if (n == 0) {
      if (is_write) return -EIO;
      break; /* end of file */
    }
    done += (size_t)n;
  }
  return (int64_t)done;
}

static void io_batch_execute(napi_env env, void *data) {
  (void)env;
  io_batch_job *job = data;
  for (uint32_t i = 0; i < job->count; i++) {
    job->items[i].result =
        io_batch_item(job->fd, job->is_write, job->items[i].data, job->items[i].length, job->items[i].offset);
  }
}

static void io_batch_free(napi_env env, io_batch_job *job) {
  for (uint32_t i = 0; i < job->count; i++) {
    if (job->items[i].ref != NULL) napi_delete_reference(env, job->items[i].ref);
  }
  if (job->work != NULL) napi_delete_async_work(env, job->work);
  free(job);
}

static void io_batch_complete(napi_env env, napi_status status, void *data) {
  io_batch_job *job = data;
  if (status != napi_ok) {
    napi_value msg, error;
    napi_create_string_utf8(env, "secondsite_native: an I/O batch was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &error);
    napi_reject_deferred(env, job->deferred, error);
  } else {
    napi_value results;
    napi_create_array_with_length(env, job->count, &results);
    for (uint32_t i = 0; i < job->count; i++) {
      napi_value r;
      /* a write reports 0 when all its bytes were written; a read the bytes read (short at EOF) */
      int64_t result = job->items[i].result;
      if (job->is_write && result >= 0) result = 0;
      napi_create_double(env, (double)result, &r);
      napi_set_element(env, results, i, r);
    }
    napi_resolve_deferred(env, job->deferred, results);
  }
  io_batch_free(env, job);
}

static napi_value io_batch(napi_env env, napi_callback_info info, int is_write) {
  const char *name = is_write ? "pwriteBatch" : "preadBatch";
  size_t argc = 3;
  napi_value argv[3];
  int64_t fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!get_int64_arg(env, argv, argc, 0, "fd", &fd)) return NULL;
  if (fd > INT_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "secondsite_native: fd is out of range");
    return NULL;
  }
  bool buffers_ok = false, offsets_ok = false;
  uint32_t count = 0, offsets_count = 0;
  if (argc >= 3) {
    napi_is_array(env, argv[1], &buffers_ok);
    napi_is_array(env, argv[2], &offsets_ok);
  }
  if (buffers_ok) napi_get_array_length(env, argv[1], &count);
  if (offsets_ok) napi_get_array_length(env, argv[2], &offsets_count);
  if (!buffers_ok || !offsets_ok || count != offsets_count || count == 0 || count > IO_BATCH_MAX) {
    char message[160];
    snprintf(message, sizeof message,
             "secondsite_native: %s takes an fd and two arrays of the same length (1..%d): buffers and offsets",
             name, IO_BATCH_MAX);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return NULL;
  }
  io_batch_job *job = calloc(1, sizeof *job + (size_t)count * sizeof job->items[0]);
  if (job == NULL) {
    throw_errno(env, ENOMEM, "calloc");
    return NULL;
  }
  job->fd = (int)fd;
  job->is_write = is_write;
  for (uint32_t i = 0; i < count; i++) {
    napi_value buffer, offset_value;
    bool is_buffer = false;
    void *bytes = NULL;
    size_t length = 0;
    int64_t offset;
    if (napi_get_element(env, argv[1], i, &buffer) != napi_ok || napi_is_buffer(env, buffer, &is_buffer) != napi_ok ||
        !is_buffer || napi_get_buffer_info(env, buffer, &bytes, &length) != napi_ok) {
      io_batch_free(env, job);
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "secondsite_native: batch buffers must be Buffers");
      return NULL;
    }
    if (napi_get_element(env, argv[2], i, &offset_value) != napi_ok ||
        !get_int64_arg(env, &offset_value, 1, 0, "offset", &offset)) {
      io_batch_free(env, job);
      return NULL;
    }
    job->count = i + 1;
    if (napi_create_reference(env, buffer, 1, &job->items[i].ref) != napi_ok) {
      io_batch_free(env, job);
      napi_throw_error(env, NULL, "secondsite_native: napi_create_reference failed");
      return NULL;
    }
    job->items[i].data = bytes;
    job->items[i].length = length;
    job->items[i].offset = offset;
  }
  napi_value promise, resource_name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    io_batch_free(env, job);
    napi_throw_error(env, NULL, "secondsite_native: napi_create_promise failed");
    return NULL;
  }
  napi_create_string_utf8(env, is_write ? "secondsite.pwriteBatch" : "secondsite.preadBatch", NAPI_AUTO_LENGTH,
                          &resource_name);
  if (napi_create_async_work(env, NULL, resource_name, io_batch_execute, io_batch_complete, job, &job->work) !=
          napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    /* the promise exists: settle it (rejected) rather than throw and leave it pending forever */
    napi_value msg, error;
    napi_create_string_utf8(env, "secondsite_native: could not queue an I/O batch", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &error);
    napi_reject_deferred(env, job->deferred, error);
    io_batch_free(env, job);
    return promise;
  }
  return promise;
}

static napi_value pwrite_batch(napi_env env, napi_callback_info info) { return io_batch(env, info, 1); }
static napi_value pread_batch(napi_env env, napi_callback_info info) { return io_batch(env, info, 0); }

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_enumerable, NULL},
      {"punchHole", NULL, punch_hole, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zeroRange", NULL, zero_range, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pwriteBatch", NULL, pwrite_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"preadBatch", NULL, pread_batch, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
