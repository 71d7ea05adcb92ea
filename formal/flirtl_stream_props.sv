// Stream-handshake properties of a generated flirtl IP top, for SymbiYosys (`make formal`).
//
// `flirtl.flow.formal` fills in the {placeholders} from the IP's ports.json and writes this file
// beside a tiny generated IP; the properties themselves do not depend on the model.
//
// Environment (assumed): reset in the first cycle; the count source obeys AXI4-Stream (once
// s_axis_tvalid is high it stays high, with tdata and tlast unchanged, until s_axis_tready);
// m_axis_tready is free (any backpressure pattern).
//
// Proved (asserted) at every step up to the depth:
//   * m_axis obeys AXI4-Stream: tvalid low after reset; once high it stays high, with tdata and
//     tlast unchanged, until the sink takes the beat; tlast is 1 on every beat (one beat, one pixel);
//   * no duplicated or spurious result: result beats out never exceed whole pixels in
//     (pixels are cut every {n_bins} accepted counts);
//   * bounded occupancy: at most {capacity} pixels between input and output, so no pixel
//     accumulates unseen;
//   * no lost pixel (bounded response): with m_axis_tready held high and no new input for
//     {latency} cycles, every accepted pixel has left (checked when the depth exceeds the latency).
// Cover: a result beat is delivered (shows the depth reaches a whole pixel).
// Order is not visible to counters: the cocotb regression compares every beat, in order, with the
// golden model.

module flirtl_formal (
    input  wire                     clk,
    input  wire                     rst,
    input  wire [{count_width}-1:0] s_axis_tdata,
    input  wire                     s_axis_tvalid,
    input  wire                     s_axis_tlast,
    input  wire                     m_axis_tready
);
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

    reg past_valid = 1'b0;
    always @(posedge clk) past_valid <= 1'b1;
    always @(*) if (!past_valid) assume(rst);

    // the source side of AXI4-Stream, as assumptions
    always @(posedge clk) if (past_valid && !$past(rst) && $past(s_axis_tvalid && !s_axis_tready)) begin
        assume(s_axis_tvalid);
        assume(s_axis_tdata == $past(s_axis_tdata));
        assume(s_axis_tlast == $past(s_axis_tlast));
    end

    // scoreboard: whole pixels in, results out, quiet cycles with the sink ready
    reg [15:0] beat_in = 0, pixels_in = 0, results_out = 0, quiet = 0;
    wire take_in  = s_axis_tvalid && s_axis_tready;
    wire take_out = m_axis_tvalid && m_axis_tready;
    always @(posedge clk) begin
        if (rst) begin
            beat_in <= 0; pixels_in <= 0; results_out <= 0; quiet <= 0;
        end else begin
            if (take_in) begin
                beat_in <= (beat_in == {n_bins} - 1) ? 16'd0 : beat_in + 16'd1;
                if (beat_in == {n_bins} - 1) pixels_in <= pixels_in + 16'd1;
            end
            if (take_out) results_out <= results_out + 16'd1;
            quiet <= (s_axis_tvalid || !m_axis_tready) ? 16'd0 : (quiet == 16'hffff ? quiet : quiet + 16'd1);
        end
    end

    always @(posedge clk) if (past_valid && !rst) begin
        if ($past(rst)) assert(!m_axis_tvalid);
        if (!$past(rst) && $past(m_axis_tvalid && !m_axis_tready)) begin
            assert(m_axis_tvalid);
            assert(m_axis_tdata == $past(m_axis_tdata));
            assert(m_axis_tlast == $past(m_axis_tlast));
        end
    end
    always @(*) if (past_valid && !rst) begin
        if (m_axis_tvalid) assert(m_axis_tlast);
        assert(results_out <= pixels_in);
        assert(pixels_in - results_out <= {capacity});
        if (quiet >= {latency}) assert(results_out == pixels_in);
    end
    always @(*) cover(past_valid && !rst && take_out);
endmodule
