/*
 * tbprofile: a QEMU user-mode TCG plugin (QEMU 7.2, plugin API v1) that counts executed
 * guest instructions per translated block and writes the hottest blocks with their
 * disassembly: where an arm64 module's instructions go, loop by loop. A developer's tool
 * (wispy's own counter is wispy/runtime/insncount); see tools/qemu-profile/README.md.
 *
 *   qemu-aarch64 -L /usr/aarch64-linux-gnu -plugin ./libtbprofile.so,out=prof.txt,top=40 ...
 *
 * Output: "total N", then per block (hottest first): its share, executed instructions,
 * executions, address and disassembly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, qemu_plugin_vcpu_tb_trans_cb_t);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, qemu_plugin_vcpu_udata_cb_t,
                                                 enum qemu_plugin_cb_flags, void *);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
extern char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, qemu_plugin_udata_cb_t, void *);
EXPORT int qemu_plugin_version = 1;

typedef struct Block {
    uint64_t vaddr, n, execs;
    char *disas;
    struct Block *next;
} Block;

#define NBUCKETS (1 << 16)
static Block *table[NBUCKETS];
static char out_path[4096] = "tbprofile.txt";
static int top = 40;

static void on_exec(unsigned int vcpu, void *ud) { (void)vcpu; ((Block *)ud)->execs++; }

static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    uint64_t va = qemu_plugin_tb_vaddr(tb);
    size_t n = qemu_plugin_tb_n_insns(tb);
    unsigned h = (unsigned)((va >> 2) ^ (va >> 18)) & (NBUCKETS - 1);
    Block *b = table[h];
    while (b && !(b->vaddr == va && b->n == n)) b = b->next;
    if (!b) {
        b = calloc(1, sizeof *b);
        b->vaddr = va;
        b->n = n;
        size_t cap = 64 * n + 1, len = 0;
        b->disas = malloc(cap);
        b->disas[0] = 0;
        for (size_t i = 0; i < n; i++) {
            char *d = qemu_plugin_insn_disas(qemu_plugin_tb_get_insn(tb, i));
            len += (size_t)snprintf(b->disas + len, cap > len ? cap - len : 0, "    %s\n", d);
            free(d);
            if (len >= cap) { cap = 2 * len + 1; b->disas = realloc(b->disas, cap); i = (size_t)-1; len = 0; }
        }
        b->next = table[h];
        table[h] = b;
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

static int by_weight(const void *a, const void *b)
{
    const Block *x = *(Block *const *)a, *y = *(Block *const *)b;
    uint64_t wx = x->n * x->execs, wy = y->n * y->execs;
    return wx < wy ? 1 : wx > wy ? -1 : 0;
}

static void on_exit_cb(qemu_plugin_id_t id, void *ud)
{
    (void)id; (void)ud;
    size_t count = 0;
    uint64_t total = 0;
    for (int i = 0; i < NBUCKETS; i++)
        for (Block *b = table[i]; b; b = b->next) { count++; total += b->n * b->execs; }
    Block **all = malloc(count * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < NBUCKETS; i++)
        for (Block *b = table[i]; b; b = b->next) all[k++] = b;
    qsort(all, count, sizeof *all, by_weight);
    FILE *f = fopen(out_path, "w");
    if (!f) return;
    fprintf(f, "total %llu\n", (unsigned long long)total);
    for (size_t i = 0; i < count && (int)i < top; i++) {
        Block *b = all[i];
        fprintf(f, "\n%5.2f%%  %llu insns  %llu execs  at 0x%llx (%llu insns)\n%s",
                100.0 * (double)(b->n * b->execs) / (double)(total ? total : 1),
                (unsigned long long)(b->n * b->execs), (unsigned long long)b->execs,
                (unsigned long long)b->vaddr, (unsigned long long)b->n, b->disas);
    }
    fclose(f);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        else if (strncmp(argv[i], "top=", 4) == 0) top = atoi(argv[i] + 4);
        else { fprintf(stderr, "tbprofile: unknown argument '%s'\n", argv[i]); return -1; }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
