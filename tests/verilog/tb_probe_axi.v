// Plain Verilog testbench for the transport exported with an AXI4-Lite host bus
// (boards/export.py --bus axi4lite): the same probe as tb_probe.v over AXI4-Lite, plus an
// unaligned read that must answer SLVERR. Defines as in tb_probe.v (ADR_* are word addresses),
// plus RESP_OKAY and RESP_SLVERR.
`timescale 1ns/1ps

module tb_probe_axi;
  reg clk = 0;
  reg rst = 1;
  always #5 clk = ~clk;

  localparam AW = `ADDR_WIDTH + 2;

  reg  [AW-1:0] awaddr = 0, araddr = 0;
  reg           awvalid = 0, wvalid = 0, bready = 0, arvalid = 0, rready = 0;
  reg  [31:0]   wdata = 0;
  reg  [3:0]    wstrb = 0;
  wire          awready, wready, bvalid, arready, rvalid;
  wire [1:0]    bresp, rresp;
  wire [31:0]   rdata;
  wire          irq;
  integer       errors = 0;

  `MODULE dut (
    .clk(clk), .rst(rst),
    .axi__awaddr(awaddr), .axi__awprot(3'd0), .axi__awvalid(awvalid), .axi__awready(awready),
    .axi__wdata(wdata), .axi__wstrb(wstrb), .axi__wvalid(wvalid), .axi__wready(wready),
    .axi__bresp(bresp), .axi__bvalid(bvalid), .axi__bready(bready),
    .axi__araddr(araddr), .axi__arprot(3'd0), .axi__arvalid(arvalid), .axi__arready(arready),
    .axi__rdata(rdata), .axi__rresp(rresp), .axi__rvalid(rvalid), .axi__rready(rready),
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

  task fail(input [8*40-1:0] what);
    begin
      $display("FAIL: %0s", what);
      errors = errors + 1;
    end
  endtask

  task axi_read(input [AW-1:0] a, output [31:0] d, output [1:0] r);
    integer n;
    begin
      @(negedge clk);
      araddr = a; arvalid = 1; rready = 1;
      n = 0;
      @(posedge clk);
      while (!arready && n < 16) begin n = n + 1; @(posedge clk); end
      if (!arready) fail("no arready");
      @(negedge clk) arvalid = 0;
      n = 0;
      while (!rvalid && n < 16) begin n = n + 1; @(negedge clk); end
      if (!rvalid) fail("no rvalid");
      d = rdata; r = rresp;
      @(posedge clk);
      @(negedge clk) rready = 0;
    end
  endtask

  task axi_write(input [AW-1:0] a, input [31:0] d, output [1:0] r);
    integer n;
    begin
      @(negedge clk);
      awaddr = a; awvalid = 1; wdata = d; wstrb = 4'hf; wvalid = 1; bready = 1;
      n = 0;
      @(posedge clk);
      while (!(awready && wready) && n < 16) begin n = n + 1; @(posedge clk); end
      if (!(awready && wready)) fail("no awready/wready");
      @(negedge clk) begin awvalid = 0; wvalid = 0; end
      n = 0;
      while (!bvalid && n < 16) begin n = n + 1; @(negedge clk); end
      if (!bvalid) fail("no bvalid");
      r = bresp;
      @(posedge clk);
      @(negedge clk) bready = 0;
    end
  endtask

  task expect_read(input [`ADDR_WIDTH-1:0] word, input [31:0] want, input [8*16-1:0] what);
    reg [31:0] got;
    reg [1:0]  resp;
    begin
      axi_read({word, 2'b00}, got, resp);
      if (got !== want || resp !== `RESP_OKAY) begin
        $display("FAIL: %0s read %h resp %0d, expected %h", what, got, resp, want);
        errors = errors + 1;
      end else
        $display("ok   %0s = %h", what, got);
    end
  endtask

  reg [31:0] data;
  reg [1:0]  resp;

  initial begin
    repeat (3) @(posedge clk);
    @(negedge clk) rst = 0;
    expect_read(`ADR_MAGIC, `MAGIC, "MagicValue");
    expect_read(`ADR_VERSION, `VERSION, "Version");
    expect_read(`ADR_DEVICE_ID, `DEVICE_ID, "DeviceID");
    expect_read(`ADR_VENDOR_ID, `VENDOR_ID, "VendorID");
    axi_write(4 * `ADR_STATUS, `STATUS_VALUE, resp);
    if (resp !== `RESP_OKAY) fail("Status write not OKAY");
    expect_read(`ADR_STATUS, `STATUS_VALUE, "Status");
    axi_read(4 * `ADR_MAGIC + 1, data, resp);                // unaligned
    if (resp !== `RESP_SLVERR) fail("unaligned read not SLVERR");
    else $display("ok   unaligned read: SLVERR");
    axi_write(4 * `ADR_STATUS + 2, 0, resp);                // unaligned: no reset
    if (resp !== `RESP_SLVERR) fail("unaligned write not SLVERR");
    expect_read(`ADR_STATUS, `STATUS_VALUE, "Status");
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
