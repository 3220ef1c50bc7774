"""Constructor argument errors: TypeError for a wrong type, ValueError for a wrong value."""

import pytest

from boards.bench import Registered
from boards.host import BridgeError, BridgeMMIO, SerialLine
from boards.msi_area import RegisterTable
from boards.top import BoardTop
from hw.device import ConfigPortSignature, DeviceSignature, QueuesSignature
from hw.notify import NotificationQueue
from hw.regmap import Access, Field, Register, RegisterMap
from hw.soc.bridge import UARTBridge
from hw.soc.echo import EchoDevice
from hw.soc.recorder import MSIRecorder
from hw.soc.soc import BOARD_TRANSPORT, BridgeSoC
from hw.soc.uart import UARTReceiver, UARTTransmitter, divisor_for


CASES = [
    (lambda: ConfigPortSignature(config_size=6), ValueError,
     r"config_size must be a non-negative multiple of 4, not 6"),
    (lambda: ConfigPortSignature(config_size=8.0), TypeError, r"config_size must be .* not 8\.0"),
    (lambda: QueuesSignature(0), ValueError, r"num_queues must be a positive integer, not 0"),
    (lambda: QueuesSignature(True), TypeError, r"num_queues must be a positive integer, not True"),
    (lambda: DeviceSignature(num_queues=1, config_size=4, feature_words=1), ValueError,
     r"feature_words must be an integer of at least 2, not 1"),
    (lambda: DeviceSignature(num_queues=1, config_size="4"), TypeError, r"config_size .* not '4'"),
    (lambda: NotificationQueue(num_queues=0x10001), ValueError,
     r"num_queues must be an integer from 1 to 65536, not 65537"),
    (lambda: NotificationQueue(num_queues=2, with_data=1), TypeError,
     r"with_data must be a bool, not 1"),
    (lambda: RegisterMap(None, notify=1), TypeError, r"notify must be a bool, not 1"),
    (lambda: Field("f", 30, 4), ValueError,
     r"width must be an integer from 1 to 2 \(lsb 30\), not 4"),
    (lambda: Field("f", "0", 4), TypeError, r"lsb must be an integer from 0 to 31, not '0'"),
    (lambda: Register("R", 0x2, Access.R, "r"), ValueError,
     r"offset must be a non-negative multiple of 4, not 2"),
    (lambda: Register("R", 0x0, "R", "r"), TypeError, r"access must be an Access, not 'R'"),
    (lambda: Register("R", 0x0, Access.R, "r", reset=1 << 32), ValueError,
     r"reset must be None or an integer of 32 bits, not 4294967296"),
    (lambda: UARTReceiver(divisor=4.0), TypeError, r"divisor must be an integer of at least 4"),
    (lambda: UARTTransmitter(divisor=3), ValueError,
     r"divisor must be an integer of at least 4, not 3"),
    (lambda: divisor_for("12e6", 9600), TypeError, r"clk_frequency must be a number, not '12e6'"),
    (lambda: UARTBridge(timeout=10, bus_timeout=0), ValueError,
     r"bus_timeout must be a positive integer, not 0"),
    (lambda: UARTBridge(timeout=None), TypeError, r"timeout must be a positive integer, not None"),
    (lambda: EchoDevice(num_queues=0), ValueError, r"num_queues must be a positive integer, not 0"),
    (lambda: MSIRecorder(depth=12), ValueError, r"depth must be a power of two, not 12"),
    (lambda: MSIRecorder(depth="16"), TypeError, r"depth must be a power of two, not '16'"),
    (lambda: BridgeSoC(divisor=6, timeout=20, stretch=0), ValueError,
     r"stretch must be a positive integer, not 0"),
    (lambda: BridgeSoC(divisor=6, timeout=20, transport=[]), TypeError,
     r"transport must be a mapping"),
    (lambda: BridgeSoC(divisor=6, timeout=20, transport={**BOARD_TRANSPORT, "config_size": 16}),
     ValueError, r"transport config_size must be 8 \(the echo device's\), not 16"),
    (lambda: BridgeSoC(divisor=6, timeout=20, transport={**BOARD_TRANSPORT,
                                                         "notify_multiplier": 0x8000}),
     ValueError, r"transport window 0\.\.0xffff .* overlaps the recorder at 0x8000"),
    (lambda: BoardTop(1), TypeError, r"board must be a string"),
    (lambda: Registered(object()), TypeError, r"core must be a wiring\.Component"),
    (lambda: RegisterTable(shape=8, depth=0, init=[]), ValueError,
     r"depth must be a positive integer, not 0"),
    (lambda: BridgeError("x", code=4), TypeError, r"code must be a bridge Error or None, not 4"),
    (lambda: BridgeMMIO(object()), TypeError, r"line must have write, read and settle methods"),
    (lambda: SerialLine(1), TypeError, r"port must be a string"),
    (lambda: SerialLine("/dev/null", baud=0), ValueError,
     r"baud must be a positive integer, not 0"),
]


@pytest.mark.parametrize("make, error, message", CASES, ids=range(len(CASES)))
def test_constructor_refuses(make, error, message):
    with pytest.raises(error, match=message) as info:
        make()
    assert type(info.value) is error
