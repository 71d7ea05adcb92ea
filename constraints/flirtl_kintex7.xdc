# Timing constraints for the flirtl IP as the top of a Kintex-7 xc7k410t build (the reference HLS
# design's part and clock). In a camera design the IP sits inside the fabric: keep the clock
# line (on whatever net drives `clk`) and drop the I/O lines, which only give an out-of-context
# run of the bare IP sensible I/O timing. No pin locations: the IP carries no board constraints.

# 222 MHz, as the reference design (4.505 ns)
create_clock -name clk -period 4.505 [get_ports clk]

# `rst` is synchronous (active high) and held for many cycles: one full cycle, no tighter
set_input_delay  -clock clk 0.000 [get_ports rst]

# Stream ports: assume registered logic on the other side, half a cycle each way
set_input_delay  -clock clk 2.250 [get_ports {s_axis_tdata[*] s_axis_tvalid s_axis_tlast m_axis_tready}]
set_output_delay -clock clk 2.250 [get_ports {s_axis_tready m_axis_tdata[*] m_axis_tvalid m_axis_tlast}]
# with --sfd-stream (these ports exist only then; -quiet keeps the file valid without them)
set_input_delay  -clock clk 2.250 [get_ports -quiet {m_sfd_axis_tready}]
set_output_delay -clock clk 2.250 [get_ports -quiet {m_sfd_axis_tdata[*] m_sfd_axis_tvalid m_sfd_axis_tlast}]
