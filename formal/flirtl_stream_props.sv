// Stream properties of a generated flirtl IP top, for SymbiYosys (`make formal`).
//
// `flirtl.flow.formal` fills in the {placeholders} from the IP's ports.json and writes this file
// beside a tiny generated IP with {engines} pixel engine(s) (`--engines 1` or `2`). With two engines
// the top deals whole pixels to the engines in turn and collects their results in the same turn.
// The job script (flirtl_stream.sby) ties the `p_*` probe wires below (the top's deal/collect/beat
// counters and, in one `flirtl_engine_props` instance per engine, that engine's registers) to
// registers inside the real IP after flattening; the probes only observe.
//
// Environment (assumed): reset in the first cycle only; the count source obeys AXI4-Stream (once
// s_axis_tvalid is high it stays high, with tdata and tlast unchanged, until s_axis_tready); tlast
// is free (any framing, right or wrong); m_axis_tready is free (any backpressure pattern).
//
// Proved, unbounded (k-induction), every assertion at every cycle of every run:
//   * m_axis obeys AXI4-Stream: tvalid low in the first cycle after reset; once high it stays
//     high, with tdata and tlast unchanged, until the sink takes the beat; tlast is 1 on every beat;
//   * end to end, no result beat lost, duplicated or reordered: in each engine a tracked pixel (any
//     one: the solver picks it with the free input `pick`) leaves m_axis as exactly the result beat
//     its position in the whole input stream says (counted over all engines), and that beat carries
//     its own framing_error bit (the per-pixel tag the IP carries from the input counter, through
//     its context, the finished queue, the lifetime unit and the result queue to m_axis_tdata); no
//     result beat ever leaves without a whole pixel behind it; at most {capacity} pixels per engine
//     are between input and output;
//   * no internal queue is ever written while full (each engine's finished and result queues), and
//     each engine's admission count equals the pixels it really holds.
// The remaining assertions are the inductive invariant that makes the proof unbounded: which
// engine holds the i-th outstanding pixel (dealt and collected in turn from `collect`), where each
// tracked pixel is (input stage, its context, or position k of its engine's queue chain), the order
// in which the contexts finish, and the queues' pointer arithmetic.

module flirtl_formal (
    input  wire                     clk,
    input  wire                     rst,
    input  wire [{count_width}-1:0] s_axis_tdata,
    input  wire                     s_axis_tvalid,
    input  wire                     s_axis_tlast,
    input  wire                     m_axis_tready,
    input  wire [{engines}-1:0]      pick
);
    localparam E = {engines};           // pixel engines
    localparam T = {n_bins};            // counts per pixel
    localparam FB = {framing_bit};      // framing_error in m_axis_tdata
    localparam CAP = {capacity};        // pixels per engine between input and output

    wire                      s_axis_tready;
    wire [{result_width}-1:0] m_axis_tdata;
    wire                      m_axis_tvalid;
    wire                      m_axis_tlast;

    {top} dut (
        .clk(clk), .rst(rst),
        .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid),
        .s_axis_tready(s_axis_tready), .s_axis_tlast(s_axis_tlast),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid),
        .m_axis_tready(m_axis_tready), .m_axis_tlast(m_axis_tlast)
    );

    // -- probes of the top (driven by `connect`; 0 with one engine) ---------------------------
    (* keep *) wire [7:0] p_deal, p_collect, p_beat;   // engine dealt to, engine collected from, beat of the pixel

    // -- environment --------------------------------------------------------------------------
    reg past_valid = 1'b0;
    always @(posedge clk) past_valid <= 1'b1;
    always @(*) assume(rst == !past_valid);
    always @(posedge clk) if (past_valid && !$past(rst) && $past(s_axis_tvalid && !s_axis_tready)) begin
        assume(s_axis_tvalid);
        assume(s_axis_tdata == $past(s_axis_tdata));
        assume(s_axis_tlast == $past(s_axis_tlast));
    end
    wire check = past_valid && !rst;
    wire take_in  = s_axis_tvalid && s_axis_tready;
    wire take_out = m_axis_tvalid && m_axis_tready;

    // -- whole pixels taken and result beats given, over all engines --------------------------
    reg [7:0] outstanding = 0;
    wire [E-1:0] pixel_end;
    wire [8*E-1:0] outs, beats;
    wire [E-1:0] errs;
    always @(posedge clk) outstanding <= rst ? 8'd0 : outstanding + (pixel_end != 0) - take_out;

{instances}
    always @(posedge clk) if (check) begin
        // m_axis: AXI4-Stream master rules
        if ($past(rst)) assert(!m_axis_tvalid);
        if (!$past(rst) && $past(m_axis_tvalid && !m_axis_tready)) begin
            assert(m_axis_tvalid);
            assert(m_axis_tdata == $past(m_axis_tdata));
            assert(m_axis_tlast == $past(m_axis_tlast));
        end
    end

    integer e;
    reg [7:0] sum;
    always @(*) begin
        sum = 0;
        for (e = 0; e < E; e = e + 1) sum = sum + outs[8*e +: 8];
    end
    always @(*) if (check) begin
        if (m_axis_tvalid) assert(m_axis_tlast);
        // no result beat without a whole pixel behind it
        if (take_out) assert(outstanding != 0);
        assert(outstanding <= E * CAP);
        // ---- the inductive invariant: the outstanding pixels lie in the engines in turn ----
        assert(p_deal < E && p_collect < E);
        assert(outstanding == sum);
        assert(p_deal == (p_collect + outstanding) % E);
        for (e = 0; e < E; e = e + 1) begin
            assert(outs[8*e +: 8] == (outstanding + E - 1 - (e + E - p_collect) % E) / E);
            if (e == p_deal) assert(E == 1 || beats[8*e +: 8] == p_beat);
            else assert(beats[8*e +: 8] == 0 && !errs[e]);
        end
    end
endmodule

// One engine's share: its pixels (those dealt to it), its tracked pixel and its invariant.
module flirtl_engine_props #(parameter IDX = 0) (
    input  wire       clk,
    input  wire       rst,
    input  wire       check,
    input  wire       take_in,       // a count taken from s_axis
    input  wire       s_axis_tlast,
    input  wire       take_out,      // a result beat taken from m_axis
    input  wire       out_framing,   // m_axis_tdata's framing_error bit
    input  wire [7:0] deal,
    input  wire [7:0] collect,
    input  wire [7:0] outstanding,   // all engines' pixels between input and output
    input  wire       pick,
    output wire       pixel_end,
    output reg  [7:0] mine = 0,      // this engine's pixels between input and output
    output reg  [7:0] beat = 0,
    output reg        err = 0
);
    localparam E = {engines};
    localparam T = {n_bins};            // counts per pixel
    localparam F = {contexts};          // contexts (pixels in flight in the engine)
    localparam LAST = {last_slot};      // a pixel's last slot
    localparam Q = {queue_depth};       // storage words of each queue (plus its output register)
    localparam CAP = {capacity};

    // -- probes of this engine (driven by `connect` in the job script) ------------------------
    (* keep *) wire p_admit, p_in_framing, p_head;   // p_head: framing_error of the engine's output beat
    (* keep *) wire [7:0] p_fill_index, p_input_state;
    (* keep *) wire [7:0] p_in_system;
    (* keep *) wire [F-1:0] p_busy, p_cframing;
    (* keep *) wire [8*F-1:0] p_steps;
    (* keep *) wire [7:0] p_ctx, p_done_ctx, p_fin_ctx, p_slot_step, p_done_step, p_cycle;
    (* keep *) wire p_slot_active, p_done_active;
    (* keep *) wire p_fin_wen, p_fin_wrdy, p_fin_framing, p_fin_ren, p_fin_rrdy, p_f_head;
    (* keep *) wire p_res_wen, p_res_wrdy, p_res_rrdy, p_lf_framing;
    (* keep *) wire [7:0] p_fin_level, p_res_level, p_f_rd, p_f_wr, p_r_rd, p_r_wr, p_lifetime_state;
    (* keep *) wire [Q-1:0] p_fst, p_rst;   // framing bit of each storage word of the two queues

    // -- the input side: whole pixels and their expected framing_error ------------------------
    wire my_in = take_in && deal == IDX;
    wire my_out = take_out && collect == IDX;
    wire at_end = beat == T - 1;
    assign pixel_end = my_in && at_end;
    wire pixel_err = err || (s_axis_tlast != at_end);
    always @(posedge clk) begin
        if (rst) begin
            beat <= 0; err <= 0;
        end else if (my_in) begin
            beat <= at_end ? 8'd0 : beat + 8'd1;
            err <= at_end ? 1'b0 : pixel_err;
        end
    end

    // -- where pixels are: the engine (admission to the finished queue) and the queue chain ---
    wire pending = p_done_active && p_done_step == LAST && p_cycle < {finish_cycle};   // finishing, not yet queued
    wire last_running = p_slot_active && p_slot_step == LAST;
    wire [7:0] busy_count;
    genvar g;
    generate
        wire [7:0] partial [0:F];
        assign partial[0] = 0;
        for (g = 0; g < F; g = g + 1) begin : count
            assign partial[g + 1] = partial[g] + p_busy[g];
        end
        assign busy_count = partial[F];
    endgenerate
    wire [7:0] engine_count = busy_count + last_running + pending + p_fin_wen;
    wire [7:0] chain_len = 8'd0 + p_res_rrdy + p_res_level + p_fin_rrdy + p_fin_level;
    wire [7:0] in_flight = (p_input_state != 0) + engine_count + chain_len;

    // finishing order of the engine's pixels: smaller key finishes first
    function [7:0] key(input [7:0] j);
        reg [7:0] pos;
        begin
            pos = (j + F - p_ctx - 1) % F;   // slots until context j's next turn
            if (p_busy[j]) key = (LAST - p_steps[8*j +: 8]) * F + pos + 3;
            else if (last_running && p_ctx == j) key = 2;
            else if (pending && p_done_ctx == j) key = 1;
            else if (p_fin_wen && p_fin_ctx == j) key = 0;
            else key = 8'hff;
        end
    endfunction

    // framing bit at position p of the queue chain, the head (the beat on m_axis) first
    function chain(input [7:0] p);
        begin
            if (p < p_res_rrdy) chain = p_head;
            else if (p < p_res_rrdy + p_res_level) chain = p_rst[(p - p_res_rrdy + p_r_rd) % Q];
            else if (p < p_res_rrdy + p_res_level + p_fin_rrdy) chain = p_f_head;
            else chain = p_fst[(p - p_res_rrdy - p_res_level - p_fin_rrdy + p_f_rd) % Q];
        end
    endfunction

    // -- the scoreboard: one tracked pixel, chosen by the solver ------------------------------
    localparam NONE = 0, INPUT = 1, CONTEXT = 2, CHAIN = 3;
    reg [7:0] ahead = 0, tctx = 0;
    reg [7:0] gahead = 0;   // result beats of all engines before the tracked one
    reg [1:0] loc = NONE;
    reg tag = 0;
    wire [7:0] nxt = (p_ctx + 1) % F;
    wire [7:0] t_key = key(tctx);
    integer j;
    reg [7:0] older;
    always @(*) begin
        older = 0;
        for (j = 0; j < F; j = j + 1) if (key(j) < t_key) older = older + 1;
    end
    always @(posedge clk) begin
        if (rst) begin
            mine <= 0; ahead <= 0; gahead <= 0; tctx <= 0; loc <= NONE; tag <= 0;
        end else begin
            mine <= mine + pixel_end - my_out;
            if (loc != NONE && take_out) gahead <= gahead - 1;
            if (loc != NONE && my_out) begin
                if (ahead == 0) loc <= NONE;
                else ahead <= ahead - 1;
            end
            if (loc == INPUT && p_admit) begin
                loc <= CONTEXT; tctx <= nxt;
            end
            if (loc == CONTEXT && p_fin_wen && p_fin_ctx == tctx) loc <= CHAIN;
            if (pixel_end && loc == NONE && pick) begin
                loc <= INPUT; ahead <= mine - my_out; gahead <= outstanding - take_out; tag <= pixel_err;
            end
        end
    end

    always @(*) if (check) begin
        // no lost, duplicated or reordered result beat: the tracked pixel leaves m_axis as the
        // beat its input position says, with its own framing_error bit
        if (my_out) assert(mine != 0);
        assert(mine <= CAP);
        if (loc != NONE && my_out && ahead == 0) assert(out_framing == tag && gahead == 0);
        if (loc != NONE && take_out && gahead == 0) assert(my_out && ahead == 0);
        // no internal queue written while full; the admission count is exact
        if (p_fin_wen) assert(p_fin_wrdy);
        if (p_res_wen) assert(p_res_wrdy);
        assert(p_in_system == engine_count + chain_len);

        // ---- the inductive invariant ----
        assert(mine == in_flight);
        if (loc != NONE) assert(gahead == E * ahead + (IDX + E - collect) % E);
        assert(p_in_system <= F + 2);
        assert(p_input_state <= 4);
        assert(beat == p_fill_index);
        if (p_input_state == 0) assert(err == p_in_framing);
        else assert(p_fill_index == 0 && !err);
        for (j = 0; j < F; j = j + 1) if (p_busy[j]) assert(p_steps[8*j +: 8] >= 1 && p_steps[8*j +: 8] <= LAST);
        if (p_slot_active) begin
            assert(p_slot_step <= LAST);
            assert(p_busy[p_ctx] == (p_slot_step != LAST));
            if (p_busy[p_ctx]) assert(p_steps[8*p_ctx +: 8] == p_slot_step + 1);
        end else assert(!p_busy[p_ctx]);
        assert(p_ctx < F && p_done_ctx < F);
        if (p_done_active) begin
            assert(p_done_step <= LAST);
            assert(p_done_ctx == (p_ctx + F - 1) % F);
        end
        if (p_done_active && p_done_step == LAST) assert(!p_busy[p_done_ctx]);
        assert(p_fin_wen == (p_cycle == {finish_cycle} && p_done_active && p_done_step == LAST));
        if (p_fin_wen) assert(p_fin_ctx == p_done_ctx);
        assert(p_fin_level <= Q && p_res_level <= Q);
        if (!p_fin_rrdy) assert(p_fin_level <= 1);
        if (!p_res_rrdy) assert(p_res_level <= 1);
        assert(p_f_rd < Q && p_f_wr < Q && p_r_rd < Q && p_r_wr < Q);
        assert(p_f_wr == (p_f_rd + p_fin_level) % Q);
        assert(p_r_wr == (p_r_rd + p_res_level) % Q);
        if (p_lifetime_state != 0) assert(p_fin_rrdy && p_lf_framing == p_f_head);
        assert(p_res_wen == p_fin_ren);
        case (loc)
            INPUT: begin
                assert(p_input_state != 0 && p_in_framing == tag);
                assert(ahead == chain_len + engine_count);
            end
            CONTEXT: begin
                assert(tctx < F && t_key != 8'hff);
                assert(p_cframing[tctx] == tag);
                assert(ahead == chain_len + older);
            end
            CHAIN: begin
                assert(ahead < chain_len);
                assert(chain(ahead) == tag);
            end
        endcase
    end
endmodule
