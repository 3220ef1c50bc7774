// Plain Verilog testbench for the exported transport (boards/export.py): probes the device the
// way virtio_mmio_probe does and checks Status. Every expected value and register address comes
// from the test as a define (tests/test_export.py computes them from hw/regmap.py):
//   ADDR_WIDTH NUM_QUEUES MODULE
//   ADR_MAGIC ADR_VERSION ADR_DEVICE_ID ADR_VENDOR_ID ADR_STATUS   (word addresses)
//   MAGIC VERSION DEVICE_ID VENDOR_ID STATUS_VALUE
// HAS_MSI is defined for the MSI personalities (an msi__* stream port).
// Prints "PASS" and finishes, or "FAIL ..." and stops with $fatal.
`timescale 1ns/1ps

module tb_probe;
  reg clk = 0;
  reg rst = 1;
  always #5 clk = ~clk;

  reg                    cyc = 0, stb = 0, we = 0;
  reg  [`ADDR_WIDTH-1:0] adr = 0;
  reg  [3:0]             sel = 0;
  reg  [31:0]            dat_w = 0;
  wire [31:0]            dat_r;
  wire                   ack;
  wire                   irq;
  integer                errors = 0;

  `MODULE dut (
    .clk(clk), .rst(rst),
    .bus__cyc(cyc), .bus__stb(stb), .bus__we(we), .bus__adr(adr), .bus__sel(sel),
    .bus__dat_w(dat_w), .bus__dat_r(dat_r), .bus__ack(ack),
    .irq(irq),
    .device__queues__used({`NUM_QUEUES{1'b0}}),
    .device__notify__ready(1'b1),
    .device__config__r_data(32'd0),
    .device__config_change(1'b0),
    .device__needs_reset(1'b0)
`ifdef HAS_MSI
    , .msi__ready(1'b1)
`endif
  );

  // One classic Wishbone access; fails if ack does not come within 16 cycles.
  task access(input write, input [`ADDR_WIDTH-1:0] a, input [31:0] d, output [31:0] q);
    integer n;
    begin
      @(negedge clk);
      cyc = 1; stb = 1; we = write; adr = a; sel = 4'hf; dat_w = d;
      n = 0;
      @(posedge clk);
      while (!ack && n < 16) begin
        n = n + 1;
        @(posedge clk);
      end
      if (!ack) begin
        $display("FAIL: no ack for word %0h", a);
        errors = errors + 1;
      end
      q = dat_r;
      @(negedge clk);
      cyc = 0; stb = 0; we = 0;
    end
  endtask

  task expect_read(input [`ADDR_WIDTH-1:0] a, input [31:0] want, input [8*16-1:0] what);
    reg [31:0] got;
    begin
      access(0, a, 0, got);
      if (got !== want) begin
        $display("FAIL: %0s read %h, expected %h", what, got, want);
        errors = errors + 1;
      end else
        $display("ok   %0s = %h", what, got);
    end
  endtask

  reg [31:0] unused;

  initial begin
    repeat (3) @(posedge clk);
    @(negedge clk) rst = 0;
    expect_read(`ADR_MAGIC, `MAGIC, "MagicValue");
    expect_read(`ADR_VERSION, `VERSION, "Version");
    expect_read(`ADR_DEVICE_ID, `DEVICE_ID, "DeviceID");
    expect_read(`ADR_VENDOR_ID, `VENDOR_ID, "VendorID");
    expect_read(`ADR_STATUS, 0, "Status");
    access(1, `ADR_STATUS, `STATUS_VALUE, unused);
    expect_read(`ADR_STATUS, `STATUS_VALUE, "Status");
    access(1, `ADR_STATUS, 0, unused);                 // reset
    expect_read(`ADR_STATUS, 0, "Status");
    if (irq !== 1'b0) begin
      $display("FAIL: irq %b", irq);
      errors = errors + 1;
    end
    if (errors == 0) begin
      $display("PASS");
      $finish;
    end else
      $fatal(1, "FAIL: %0d errors", errors);
  end

  initial begin
    #100000;
    $fatal(1, "FAIL: timeout");
  end
endmodule
