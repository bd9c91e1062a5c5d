/* examples/charlm/plugin.c: --plugin FILE.so, shared objects whose constructors register
   cell types, and the list of the registered types for --help and messages. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "examples/charlm/charlm.h"

/* charlm reaches the library through libtapegrad.so (see the Makefile), so a plug-in
   linked against it too binds to the same, already loaded copy: one registry. */
int plugin_load(const char *path)
{
    int before = tg_cell_type_count();
    tg_clear_error();
    /* dlopen searches the library path for a name without a slash: a file is meant */
    char buf[4096];
    if (!strchr(path, '/') && snprintf(buf, sizeof buf, "./%s", path) < (int)sizeof buf)
        path = buf;
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        errorf("--plugin: cannot load %s: %s", path, dlerror());
        return EXIT_RUNTIME;
    }
    /* the same object named twice: dlopen hands back the loaded one, whose constructor
       has run already */
    static void *loaded[64];
    static int nloaded;
    for (int i = 0; i < nloaded; i++)
        if (loaded[i] == handle)
            return EXIT_OK;
    if (nloaded < (int)(sizeof loaded / sizeof loaded[0]))
        loaded[nloaded++] = handle;
    /* a registration the constructor made and the library refused left its reason here */
    if (tg_last_status() != TG_OK && strstr(tg_last_error(), "cell_type_register")) {
        errorf("--plugin: %s: %s", path, tg_last_error());
        return EXIT_RUNTIME;
    }
    if (tg_cell_type_count() == before) {
        errorf("--plugin: %s registered no cell type (its constructor must call "
               "tg_cell_type_register)", path);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;     /* the handle stays open: the types live in the object's memory */
}

void cell_types_list(char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < tg_cell_type_count() && n < size; i++) {
        int k = snprintf(out + n, size - n, "%s%s", i ? ", " : "", tg_cell_type_at(i)->name);
        if (k < 0)
            break;
        n += (size_t)k;
    }
}
