/* errno -> its symbolic name ("ENOSPC"), so JS errors carry `code` like Node's own fs errors. */
#ifndef SECONDSITE_ERRNO_NAME_H
#define SECONDSITE_ERRNO_NAME_H
const char *secondsite_errno_name(int err);
#endif
