/*
 * wispy insncount: a QEMU user-mode TCG plugin that counts executed guest
 * instructions, per guest thread (QEMU 7.2, plugin API v1).
 *
 * Debian's qemu-user ships no qemu-plugin.h, so the few API entry points used
 * here are declared by hand; they match include/qemu/qemu-plugin.h of QEMU 7.2
 * (QEMU_PLUGIN_VERSION 1). They resolve against the qemu binary when qemu
 * dlopen()s the plugin.
 *
 * Counting: each translated block gets an exec callback that adds the block's
 * instruction count to the counter of the vCPU (= guest thread in user mode)
 * running it. Each vCPU only touches its own slot, so there are no lost
 * updates with several guest threads (an inline add on one shared counter
 * would race). vCPU 0 is the main thread; IREE's local-sync device runs the
 * whole inference there, so "main" excludes the start-up noise of the
 * runtime's helper threads.
 *
 * Output, at guest exit ("insns" = all threads, "main" = vCPU 0):
 *   -plugin libinsncount.so,out=PATH   writes "insns: N\nmain: M\n" to PATH
 *   -plugin libinsncount.so -d plugin  writes the same to qemu's log (stderr)
 *
 * Build: gcc -O2 -shared -fPIC -fvisibility=hidden -o libinsncount.so insncount.c
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* ---- QEMU plugin API v1 declarations (subset of qemu-plugin.h, QEMU 7.2) ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t; /* passed through, never read */
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags {
    QEMU_PLUGIN_CB_NO_REGS = 0,
    QEMU_PLUGIN_CB_R_REGS = 1,
    QEMU_PLUGIN_CB_RW_REGS = 2,
};
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                                  qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
                                                 qemu_plugin_vcpu_udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags,
                                                 void *userdata);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id,
                                           qemu_plugin_udata_cb_t cb, void *userdata);
extern void qemu_plugin_outs(const char *string);

EXPORT int qemu_plugin_version = 1;

/* ---- plugin ---- */
#define MAX_VCPUS 1024 /* slots; indices past the end share the last one */

static uint64_t counts[MAX_VCPUS];
static char out_path[4096];

static void on_tb_exec(unsigned int vcpu_index, void *userdata)
{
    unsigned int slot = vcpu_index < MAX_VCPUS ? vcpu_index : MAX_VCPUS - 1;
    counts[slot] += (uint64_t)(uintptr_t)userdata;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
}

static void on_guest_exit(qemu_plugin_id_t id, void *userdata)
{
    char text[128];
    uint64_t total = 0;
    (void)id;
    (void)userdata;
    for (int i = 0; i < MAX_VCPUS; i++) total += counts[i];
    snprintf(text, sizeof text, "insns: %llu\nmain: %llu\n", (unsigned long long)total,
             (unsigned long long)counts[0]);
    if (out_path[0]) {
        FILE *f = fopen(out_path, "w");
        if (f) {
            fputs(text, f);
            fclose(f);
            return;
        }
    }
    qemu_plugin_outs(text);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                               char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        } else {
            fprintf(stderr, "insncount: unknown argument '%s' (expected out=PATH)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}
