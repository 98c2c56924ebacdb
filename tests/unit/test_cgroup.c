/* test_cgroup.c: unit tests for server/config's cgroup CPU quota (server_cgroup_cpu_quota, the
 * default of WORKERS), on cgroup v1 and v2 file trees written to a temporary directory. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"
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

int main(void)
{
    snprintf(root, sizeof root, "/tmp/catalog-test-cgroup.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }

    /* cgroup v2: one line "0::GROUP", quota and period in GROUP/cpu.max, rounded up. */
    put("sys/lab/app/cpu.max", "150000 100000\n");
    CHECK_INT(quota_for("0::/lab/app\n"), 2);
    put("sys/lab/app/cpu.max", "50000 100000\n");
    CHECK_INT(quota_for("0::/lab/app\n"), 1);
    put("sys/lab/app/cpu.max", "200000 100000\n");
    CHECK_INT(quota_for("0::/lab/app\n"), 2);
    put("sys/lab/app/cpu.max", "max 100000\n");
    CHECK_INT(quota_for("0::/lab/app\n"), 0);
    /* Inside a container the group is "/": the file is at the mount root. */
    put("sys/cpu.max", "300000 100000\n");
    CHECK_INT(quota_for("0::/\n"), 3);

    /* cgroup v1: the cpu controller's line (alone or with cpuacct) names the group under cpu/. */
    put("sys/cpu/docker/abc/cpu.cfs_quota_us", "250000\n");
    put("sys/cpu/docker/abc/cpu.cfs_period_us", "100000\n");
    CHECK_INT(quota_for("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"), 3);
    CHECK_INT(quota_for("4:cpuacct,cpu:/docker/abc\n"), 3);
    put("sys/cpu/docker/abc/cpu.cfs_quota_us", "-1\n"); /* v1's "no quota" */
    CHECK_INT(quota_for("4:cpu,cpuacct:/docker/abc\n"), 0);
    /* A v1 cpu line wins over the v2 line of a hybrid layout. */
    put("sys/cpu/docker/abc/cpu.cfs_quota_us", "100000\n");
    CHECK_INT(quota_for("0::/lab/app\n4:cpu:/docker/abc\n"), 1);
    /* "cpuset" is not "cpu". */
    CHECK_INT(quota_for("3:cpuset:/docker/abc\n"), 0);

    /* Nothing to read, or nonsense: no quota, never a crash. */
    CHECK_INT(quota_for("0::/no/such/group\n"), 0);
    CHECK_INT(quota_for(""), 0);
    CHECK_INT(quota_for("garbage without colons\n:\n"), 0);
    put("sys/lab/bad/cpu.max", "0 100000\n");
    CHECK_INT(quota_for("0::/lab/bad\n"), 0);
    put("sys/lab/bad/cpu.max", "100000 0\n");
    CHECK_INT(quota_for("0::/lab/bad\n"), 0);
    put("sys/lab/bad/cpu.max", "\n");
    CHECK_INT(quota_for("0::/lab/bad\n"), 0);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/no-such-file", root);
    CHECK_INT(server_cgroup_cpu_quota(missing, root), 0);

    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", root);
    return test_report("cgroup");
}
