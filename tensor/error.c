/* tensor/error.c: the calling thread's last error, the reason behind a NULL or a status. */
#include <stdarg.h>
#include <stdio.h>

#include "tensor/tensor_internal.h"

/* One message per thread, as errno and dlerror keep theirs: a failing call on one thread
   never overwrites the reason another thread is about to read. */
static _Thread_local char last_message[512];
static _Thread_local tg_status last_status;

const char *tg_last_error(void)
{
    return last_message;
}

tg_status tg_last_status(void)
{
    return last_status;
}

void tg_clear_error(void)
{
    last_message[0] = '\0';
    last_status = TG_OK;
}

tg_status tg_error_set(tg_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_status = status;
    return status;
}

tg_status tg_error_copy(tg_status st, char *err, size_t errsize)
{
    if (err && errsize)
        snprintf(err, errsize, "%s", st == TG_OK ? "" : last_message);
    return st;
}

tg_status tg_error_wrap(const char *fmt, ...)
{
    char inner[sizeof last_message];
    snprintf(inner, sizeof inner, "%s", last_message);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n, cap = sizeof last_message - 1;
    for (const char *p = ": "; *p && len < cap; p++)
        last_message[len++] = *p;
    for (const char *p = inner; *p && len < cap; p++)    /* truncated to fit */
        last_message[len++] = *p;
    last_message[len < cap ? len : cap] = '\0';
    return last_status;
}
