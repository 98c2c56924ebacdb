/* hang_getaddrinfo.c: an LD_PRELOAD shim for test_pool_resolver.py: getaddrinfo of the name in
 * HANG_NAME blocks while the file HANG_FILE exists (a resolver that does not answer), then
 * answers as for HANG_ADDRESS (default 127.0.0.1); every other name goes to the C library's
 * getaddrinfo.  Built by the test: cc -shared -fPIC -o hang_getaddrinfo.so THIS -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    getaddrinfo_fn real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    const char *name = getenv("HANG_NAME");
    const char *file = getenv("HANG_FILE");
    if (node && name && strcmp(node, name) == 0) {
        while (file && access(file, F_OK) == 0)
            usleep(20000);
        const char *address = getenv("HANG_ADDRESS");
        node = address ? address : "127.0.0.1";
    }
    return real(node, service, hints, res);
}
