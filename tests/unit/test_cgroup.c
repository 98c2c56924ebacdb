/* test_cgroup.c: unit tests for server/config's cgroup CPU quota (server_cgroup_cpu_quota, the
 * default of WORKERS), on cgroup v1 and v2 file trees written to a temporary directory. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server_config.h"
#include "test.h"

static char root[64];

/* Writes text to root/relative, creating the directories on the way. */
static void put(const char *relative, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, relative);
    for (char *slash = strchr(path + strlen(root) + 1, '/'); slash;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0700);
        *slash = '/';
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* The quota for a /proc/self/cgroup text, with the mount root at root/sys. */
static unsigned quota_for(const char *proc_self_cgroup)
{
    put("proc-self-cgroup", proc_self_cgroup);
    char cgroup_file[128], mount_root[128];
    snprintf(cgroup_file, sizeof cgroup_file, "%s/proc-self-cgroup", root);
    snprintf(mount_root, sizeof mount_root, "%s/sys", root);
    return server_cgroup_cpu_quota(cgroup_file, mount_root);
}

/* One case: files to write first (path, text; NULL ends), the /proc/self/cgroup text, the
 * quota wanted. */
typedef struct quota_case {
    const char *files[4][2];
    const char *cgroup;
    unsigned want;
} quota_case_t;

static const quota_case_t CASES[] = {
    /* cgroup v2: one line "0::GROUP", quota and period in GROUP/cpu.max, rounded up. */
    {{{"sys/lab/app/cpu.max", "150000 100000\n"}}, "0::/lab/app\n", 2},
    {{{"sys/lab/app/cpu.max", "50000 100000\n"}}, "0::/lab/app\n", 1},
    {{{"sys/lab/app/cpu.max", "200000 100000\n"}}, "0::/lab/app\n", 2},
    {{{"sys/lab/app/cpu.max", "max 100000\n"}}, "0::/lab/app\n", 0},
    /* Inside a container the group is "/": the file is at the mount root. */
    {{{"sys/cpu.max", "300000 100000\n"}}, "0::/\n", 3},
    /* cgroup v1: the cpu controller's line (alone or with cpuacct) names the group under cpu/. */
    {{{"sys/cpu/docker/abc/cpu.cfs_quota_us", "250000\n"},
      {"sys/cpu/docker/abc/cpu.cfs_period_us", "100000\n"}},
     "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
     3},
    {{{NULL}}, "4:cpuacct,cpu:/docker/abc\n", 3},
    {{{"sys/cpu/docker/abc/cpu.cfs_quota_us", "-1\n"}}, "4:cpu,cpuacct:/docker/abc\n", 0},
    /* A v1 cpu line wins over the v2 line of a hybrid layout. */
    {{{"sys/cpu/docker/abc/cpu.cfs_quota_us", "100000\n"}}, "0::/lab/app\n4:cpu:/docker/abc\n", 1},
    /* "cpuset" is not "cpu". */
    {{{NULL}}, "3:cpuset:/docker/abc\n", 0},
    /* Nothing to read, or nonsense: no quota, never a crash. */
    {{{NULL}}, "0::/no/such/group\n", 0},
    {{{NULL}}, "", 0},
    {{{NULL}}, "garbage without colons\n:\n", 0},
    {{{"sys/lab/bad/cpu.max", "0 100000\n"}}, "0::/lab/bad\n", 0},
    {{{"sys/lab/bad/cpu.max", "100000 0\n"}}, "0::/lab/bad\n", 0},
    {{{"sys/lab/bad/cpu.max", "\n"}}, "0::/lab/bad\n", 0},
};

int main(void)
{
    snprintf(root, sizeof root, "/tmp/catalog-test-cgroup.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const quota_case_t *t = &CASES[i];
        for (int k = 0; k < 4 && t->files[k][0]; k++)
            put(t->files[k][0], t->files[k][1]);
        unsigned got = quota_for(t->cgroup);
        if (got != t->want) fprintf(stderr, "case %zu: cgroup \"%s\"\n", i, t->cgroup);
        CHECK_INT(got, t->want);
    }
    char missing[128];
    snprintf(missing, sizeof missing, "%s/no-such-file", root);
    CHECK_INT(server_cgroup_cpu_quota(missing, root), 0);

    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", root);
    return test_report("cgroup");
}
