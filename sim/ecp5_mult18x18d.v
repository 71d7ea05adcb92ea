// MULT18X18D, the ECP5 sysDSP 18x18 multiplier, in the modes that the flirtl ECP5 flow builds
// (synth_ecp5's multipliers, then flirtl.flow.synth.absorb_dsp_registers): operands from A and B
// (SOURCEA = SOURCEB = 0), each 18-bit operand sign-extended when its SIGNEDA / SIGNEDB input is
// high, P the 36-bit product; input registers (REG_INPUTA_CLK, REG_INPUTB_CLK) and the output
// register (REG_OUTPUT_CLK) each "NONE" or "CLK0", no pipeline register, no cascade, no bypass.
// Yosys ships MULT18X18D as a blackbox only; this model lets Yosys and the simulators run the
// netlist. Any other mode stops elaboration (ERROR_UNMODELLED_... below).
//
// Checked against Lattice's documentation of the sysDSP block, whose MULT18X18 primitives the ECP5
// keeps (same parameters and pins as Yosys' ECP5 cells_bb.v): each input, pipeline and output
// register picks its clock, clock enable and reset from CLK0..CLK3, CE0..CE3, RST0..RST3
// (REG_<register>_CLK / _CE / _RST), and a signed two's complement operand is sign-extended to
// the multiplier's width (LatticeECP2/M family data sheet, sysDSP section; LatticeECP3 sysDSP Usage
// Guide, TN1182), and against Lattice's simulation library model of the same register scheme
// (MULT18X18C): with RESETMODE "SYNC" a register is cleared to 0 on a clock edge while its reset
// is high, whatever its enable, and loads on a clock edge while its enable is high; SIGNEDA /
// SIGNEDB pass through the input register of their operand and are cleared with it. nextpnr-ecp5
// times a registered block from CLK0 only (Arch::getPortClockingInfo), so only CLK0 is modelled.
module MULT18X18D (
    input A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
    output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33, P34, P35
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter RESETMODE = "SYNC";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter MULT_BYPASS = "DISABLED";

    generate
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0") ||
            (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0") ||
            (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0") ||
            REG_PIPELINE_CLK != "NONE" || REG_INPUTC_CLK != "NONE" ||
            RESETMODE != "SYNC" || CAS_MATCH_REG != "FALSE" || MULT_BYPASS != "DISABLED")
            ERROR_UNMODELLED_MULT18X18D_MODE error();
    endgenerate

    wire [3:0] ce = {CE3, CE2, CE1, CE0};
    wire [3:0] rst = {RST3, RST2, RST1, RST0};
    // "CE2" -> 2, "RST1" -> 1: the last character of the selection names the input
    localparam integer A_CE = REG_INPUTA_CE[7:0] - "0", A_RST = REG_INPUTA_RST[7:0] - "0";
    localparam integer B_CE = REG_INPUTB_CE[7:0] - "0", B_RST = REG_INPUTB_RST[7:0] - "0";
    localparam integer P_CE = REG_OUTPUT_CE[7:0] - "0", P_RST = REG_OUTPUT_RST[7:0] - "0";

    wire [17:0] a_in = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b_in = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};

    // input registers: the operand with its SIGNED flag
    reg [18:0] a_reg = 19'd0, b_reg = 19'd0;
    always @(posedge CLK0) begin
        if (rst[A_RST])
            a_reg <= 19'd0;
        else if (ce[A_CE])
            a_reg <= {SIGNEDA, a_in};
        if (rst[B_RST])
            b_reg <= 19'd0;
        else if (ce[B_CE])
            b_reg <= {SIGNEDB, b_in};
    end
    wire [18:0] a = REG_INPUTA_CLK == "NONE" ? {SIGNEDA, a_in} : a_reg;
    wire [18:0] b = REG_INPUTB_CLK == "NONE" ? {SIGNEDB, b_in} : b_reg;

    // the product of the two operands, each extended by its flag: the low 36 bits are exact
    wire [35:0] a_ext = {{18{a[18] & a[17]}}, a[17:0]};
    wire [35:0] b_ext = {{18{b[18] & b[17]}}, b[17:0]};
    wire [35:0] product = a_ext * b_ext;

    reg [35:0] p_reg = 36'd0;
    always @(posedge CLK0) begin
        if (rst[P_RST])
            p_reg <= 36'd0;
        else if (ce[P_CE])
            p_reg <= product;
    end
    wire [35:0] p = REG_OUTPUT_CLK == "NONE" ? product : p_reg;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
            P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
endmodule
