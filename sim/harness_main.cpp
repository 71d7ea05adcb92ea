// `flirtl infer --engine rtl`: the verilated IP (class Vdut) driven at full throughput.
//
// harness COUNTS RESULTS [SFD]: COUNTS holds raw counts, 4 bytes little-endian each, pixel after
// pixel (FLIRTL_BINS a pixel); s_axis_tvalid stays high while counts remain, tlast on each pixel's
// last count, and every tready of the IP's outputs stays high. For the random regression the
// environment can ask for pauses: FLIRTL_IDLE (probability that the source, between beats, waits a
// cycle before offering the next), FLIRTL_BACKPRESSURE (probability that a sink holds tready low in
// a cycle) and FLIRTL_SEED; an offered beat stays valid until taken, as AXI4-Stream requires.
// Each m_axis beat goes to RESULTS
// (FLIRTL_RESULT_BYTES bytes, little-endian), each m_sfd_axis beat to SFD (FLIRTL_SFD_BYTES; 0: the
// IP has no SFD stream); Python unpacks them. Prints `cycles <n>` (reset excluded) on stdout.
// Exit 2: bad usage or file; 3: the IP broke the stream contract or stalled.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <type_traits>
#include <vector>

#include "Vdut.h"
#include "verilated.h"

static constexpr uint64_t kBins = FLIRTL_BINS;
static constexpr int kResultBytes = FLIRTL_RESULT_BYTES;
static constexpr int kSfdBytes = FLIRTL_SFD_BYTES;
static constexpr uint64_t kStallCycles = FLIRTL_STALL_CYCLES;  // no beat moving this long: a hang

template <typename T>
static typename std::enable_if<std::is_integral<T>::value>::type put(std::vector<uint8_t>& out, T value,
                                                                     int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i)));
}

template <std::size_t N>
static void put(std::vector<uint8_t>& out, const VlWide<N>& value, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(value.at(i / 4) >> (8 * (i % 4))));
}

static bool read_file(const char* path, std::vector<uint8_t>& data) {
    FILE* file = std::fopen(path, "rb");
    if (!file) return false;
    uint8_t buffer[1 << 16];
    size_t got;
    while ((got = std::fread(buffer, 1, sizeof buffer, file)) > 0) data.insert(data.end(), buffer, buffer + got);
    bool ok = !std::ferror(file);
    std::fclose(file);
    return ok;
}

static bool write_file(const char* path, const std::vector<uint8_t>& data) {
    FILE* file = std::fopen(path, "wb");
    if (!file) return false;
    bool ok = std::fwrite(data.data(), 1, data.size(), file) == data.size();
    return std::fclose(file) == 0 && ok;
}

// splitmix64: a seeded, portable stream for the pause patterns
static uint64_t next_random(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static bool chance(uint64_t& state, double probability) {
    return probability > 0 && static_cast<double>(next_random(state) >> 11) * 0x1.0p-53 < probability;
}

static double env_probability(const char* name) {
    const char* text = std::getenv(name);
    return text ? std::atof(text) : 0.0;
}

static int broken(const char* what, uint64_t cycle) {
    std::fprintf(stderr, "flirtl harness: %s (cycle %llu)\n", what, static_cast<unsigned long long>(cycle));
    return 3;
}

int main(int argc, char** argv) {
    if (argc != (kSfdBytes ? 4 : 3)) {
        std::fprintf(stderr, "usage: %s COUNTS RESULTS%s\n", argv[0], kSfdBytes ? " SFD" : "");
        return 2;
    }
    std::vector<uint8_t> raw;
    if (!read_file(argv[1], raw)) {
        std::fprintf(stderr, "flirtl harness: cannot read %s\n", argv[1]);
        return 2;
    }
    if (raw.size() % (4 * kBins)) {
        std::fprintf(stderr, "flirtl harness: %s holds %zu bytes, not whole pixels of %llu 4-byte counts\n",
                     argv[1], raw.size(), static_cast<unsigned long long>(kBins));
        return 2;
    }
    const uint64_t beats = raw.size() / 4, pixels = beats / kBins, sfd_beats = kSfdBytes ? beats : 0;
    std::vector<uint8_t> results, sfd;
    results.reserve(pixels * kResultBytes);
    sfd.reserve(sfd_beats * kSfdBytes);

    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vdut>(context.get());
    top->s_axis_tvalid = 0;
    top->s_axis_tlast = 0;
    top->m_axis_tready = 1;
#if FLIRTL_SFD_BYTES
    top->m_sfd_axis_tready = 1;
#endif
    top->rst = 1;
    for (int i = 0; i < 4; ++i) {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
    }
    top->rst = 0;

    const double idle = env_probability("FLIRTL_IDLE"), backpressure = env_probability("FLIRTL_BACKPRESSURE");
    uint64_t random_state = std::getenv("FLIRTL_SEED") ? std::strtoull(std::getenv("FLIRTL_SEED"), nullptr, 10) : 0;
    uint64_t sent = 0, got = 0, got_sfd = 0, cycle = 0, quiet = 0;
    bool offering = false;  // a beat offered stays offered until taken
    while (got < pixels || got_sfd < sfd_beats) {
        if (!offering) offering = sent < beats && !chance(random_state, idle);
        const bool offer = offering;
        top->s_axis_tvalid = offer;
        top->m_axis_tready = !chance(random_state, backpressure);
#if FLIRTL_SFD_BYTES
        top->m_sfd_axis_tready = !chance(random_state, backpressure);
#endif
        if (offer) {
            const uint8_t* p = &raw[4 * sent];
            top->s_axis_tdata = p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24;
            top->s_axis_tlast = sent % kBins == kBins - 1;
        }
        top->clk = 0;
        top->eval();  // settle the outputs on this cycle's inputs; the rising edge samples them
        bool moved = false;
        if (offer && top->s_axis_tready) {
            ++sent;
            offering = false;
            moved = true;
        }
        if (top->m_axis_tvalid && top->m_axis_tready) {
            if (got == pixels) return broken("a result beat beyond the pixels sent", cycle);
            if (!top->m_axis_tlast) return broken("a result beat without tlast", cycle);
            put(results, top->m_axis_tdata, kResultBytes);
            ++got;
            moved = true;
        }
#if FLIRTL_SFD_BYTES
        if (top->m_sfd_axis_tvalid && top->m_sfd_axis_tready) {
            if (got_sfd == sfd_beats) return broken("an SFD beat beyond the pixels sent", cycle);
            if (top->m_sfd_axis_tlast != (got_sfd % kBins == kBins - 1))
                return broken("SFD tlast not on a pixel's last decoder step", cycle);
            put(sfd, top->m_sfd_axis_tdata, kSfdBytes);
            ++got_sfd;
            moved = true;
        }
#endif
        top->clk = 1;
        top->eval();
        ++cycle;
        quiet = moved ? 0 : quiet + 1;
        if (quiet > kStallCycles) return broken("stalled: no beat moved for twice the latency bound", cycle);
    }
    top->final();
    if (!write_file(argv[2], results) || (kSfdBytes && !write_file(argv[3], sfd))) {
        std::fprintf(stderr, "flirtl harness: cannot write the results\n");
        return 2;
    }
    std::printf("cycles %llu\n", static_cast<unsigned long long>(cycle));
    return 0;
}
