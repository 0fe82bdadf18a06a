/* The instruction clock: a TCG plugin that counts the guest instructions QEMU executes
 * and records the count at every probe write (docs/MEASUREMENT.md, "Clocks").
 *
 * Every translation block adds its instruction count to its vCPU's counter when it
 * starts (inline for one vCPU, a callback per vCPU otherwise). A probe is the protocol's
 * one-byte port write, `out %al,$0xf4` (bytes e6 f4; e6 f5 for the firmware's port):
 * each such instruction gets a callback that writes, to the file given as out=PATH,
 *     probe PORT VCPU VCPU_COUNT ALL_COUNT
 * where VCPU_COUNT is the writing vCPU's instructions retired before the write (its
 * block's count minus the instructions from the write to the block's end: exact within
 * the block) and ALL_COUNT the sum over every vCPU. At exit it writes
 *     total VCPU COUNT   (one per vCPU)   and   end ALL_COUNT
 * With sample=N it also notes the guest PC of the block running when each vCPU's count
 * crosses a multiple of N (a deterministic profile under -icount) and writes
 *     sample PC HITS
 * The host runner matches probe lines to QEMU's trace of the same writes, in order per
 * port (appliance/boot/insnclock.py). Built against the plugin header of the installed
 * QEMU's own version (appliance/assemble/plugin.py). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_VCPUS 256

static uint64_t counts[MAX_VCPUS];   /* instructions each vCPU has started */
static uint64_t next_sample[MAX_VCPUS];
static int vcpus = 1;
static uint64_t sample_every;        /* 0: no sampling */
static FILE *out;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* guest PC -> hits: open addressing, grown when half full (no glib: nothing but libc) */
static struct hit { uint64_t pc; uint64_t hits; } *samples;
static size_t sample_slots, sample_used;

struct probe_site {
    unsigned port;
    uint64_t after;                  /* instructions of its block from the write to the end */
};

struct block {
    uint64_t pc;
    uint64_t n;
};

static void count_sample(uint64_t pc)
{
    if (2 * (sample_used + 1) > sample_slots) {
        size_t old_slots = sample_slots;
        struct hit *old = samples;
        sample_slots = old_slots ? 2 * old_slots : 4096;
        samples = calloc(sample_slots, sizeof *samples);
        sample_used = 0;
        for (size_t i = 0; i < old_slots; i++) {
            if (old[i].hits) {
                size_t j = (old[i].pc * 0x9e3779b97f4a7c15ull) & (sample_slots - 1);
                while (samples[j].hits) {
                    j = (j + 1) & (sample_slots - 1);
                }
                samples[j] = old[i];
                sample_used++;
            }
        }
        free(old);
    }
    size_t j = (pc * 0x9e3779b97f4a7c15ull) & (sample_slots - 1);
    while (samples[j].hits && samples[j].pc != pc) {
        j = (j + 1) & (sample_slots - 1);
    }
    if (!samples[j].hits) {
        samples[j].pc = pc;
        sample_used++;
    }
    samples[j].hits++;
}

static uint64_t all_count(void)
{
    uint64_t sum = 0;
    for (int i = 0; i < vcpus; i++) {
        sum += __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
    }
    return sum;
}

static void on_block(unsigned int vcpu, void *data)
{
    const struct block *b = data;
    uint64_t now = counts[vcpu] + b->n;
    __atomic_store_n(&counts[vcpu], now, __ATOMIC_RELAXED);
    if (sample_every && now >= next_sample[vcpu]) {
        next_sample[vcpu] = (now / sample_every + 1) * sample_every;
        pthread_mutex_lock(&lock);
        count_sample(b->pc);
        pthread_mutex_unlock(&lock);
    }
}

static void on_probe(unsigned int vcpu, void *data)
{
    const struct probe_site *site = data;
    uint64_t mine = counts[vcpu] - site->after;
    uint64_t all = all_count() - site->after;
    pthread_mutex_lock(&lock);
    fprintf(out, "probe %#x %u %" PRIu64 " %" PRIu64 "\n", site->port, vcpu, mine, all);
    fflush(out);
    pthread_mutex_unlock(&lock);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (vcpus == 1 && !sample_every) {
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &counts[0], n);
    } else {
        struct block *b = malloc(sizeof *b);  /* lives as long as the block may run */
        b->pc = qemu_plugin_tb_vaddr(tb);
        b->n = n;
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, b);
    }
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint8_t *bytes = qemu_plugin_insn_data(insn);
        if (qemu_plugin_insn_size(insn) == 2 && bytes[0] == 0xe6 && (bytes[1] == 0xf4 || bytes[1] == 0xf5)) {
            struct probe_site *site = malloc(sizeof *site);
            site->port = bytes[1];
            site->after = n - i;
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_probe, QEMU_PLUGIN_CB_NO_REGS, site);
        }
    }
}

static void at_exit(qemu_plugin_id_t id, void *unused)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < vcpus; i++) {
        fprintf(out, "total %d %" PRIu64 "\n", i, counts[i]);
    }
    for (size_t i = 0; i < sample_slots; i++) {
        if (samples[i].hits) {
            fprintf(out, "sample %#" PRIx64 " %" PRIu64 "\n", samples[i].pc, samples[i].hits);
        }
    }
    fprintf(out, "end %" PRIu64 "\n", all_count());
    fflush(out);
    pthread_mutex_unlock(&lock);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *path = NULL;
    if (!info->system_emulation) {
        fprintf(stderr, "insncount: the instruction clock counts a whole machine: system emulation only\n");
        return -1;
    }
    vcpus = info->system.max_vcpus;
    if (vcpus < 1 || vcpus > MAX_VCPUS) {
        fprintf(stderr, "insncount: %d vCPUs: at most %d are counted\n", vcpus, MAX_VCPUS);
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else if (strncmp(argv[i], "sample=", 7) == 0) {
            sample_every = strtoull(argv[i] + 7, NULL, 10);
        } else {
            fprintf(stderr, "insncount: unknown argument %s (it takes out=PATH and sample=N)\n", argv[i]);
            return -1;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "insncount: no out=PATH given\n");
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        perror("insncount: cannot open its output");
        return -1;
    }
    if (sample_every) {
        for (int i = 0; i < vcpus; i++) {
            next_sample[i] = sample_every;
        }
    }
    fprintf(out, "vcpus %d\n", vcpus);
    fflush(out);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
