// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-sim: a User-Mode Linux bridge to a virtio-mmio device in a simulation process.
 *
 * The simulation process starts this kernel with two SOCK_SEQPACKET sockets it inherits,
 * named on the command line:
 *
 *	virtio_sim.fd=N		the access channel: every readb/w/l/q and writeb/w/l/q of the
 *				device's MMIO window is a request, answered before the access
 *				returns (lock-step: the simulation runs while the guest waits)
 *	virtio_sim.irq_fd=M	the interrupt channel: the simulation's IRQ events
 *	virtio_sim.base=ADDR	the window's physical address (default 0x40000000)
 *
 * At boot the bridge hands the guest's memory file to the simulation (so the device reads and
 * writes rings and buffers at guest physical addresses), learns the window's size, owns the
 * window with logic_iomem, makes an interrupt of the interrupt channel, and registers a
 * platform device "virtio-mmio" with that window and interrupt: the unmodified virtio_mmio
 * driver probes it (the "board file" method that drivers/virtio/virtio_mmio.c documents).
 *
 * The device's MSI domain parent is the bridge's: it composes each vector's message (address
 * VIRTIO_SIM_MSI_ADDRESS, data the vector's number), and an MSI message the simulation passes
 * on from the device is delivered as that vector's interrupt. A driver that knows the
 * proposal's MSI (sim/uml/kernel/patches) builds its domain on it; the mainline driver never
 * asks for it.
 *
 * A failed or refused access cannot be reported to the driver (readl has no error), and going
 * on would hide it, so it ends the run: panic() with what failed.
 *
 * Without virtio_sim.fd the bridge does nothing.
 */
#include <linux/init.h>
#include <linux/interrupt.h>
#include <linux/ioport.h>
#include <linux/irq.h>
#include <linux/irqdesc.h>
#include <linux/irqdomain.h>
#include <linux/irq_work.h>
#include <linux/kernel.h>
#include <linux/logic_iomem.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/msi.h>
#include <linux/mutex.h>
#include <linux/platform_device.h>
#include <linux/spinlock.h>
#include <as-layout.h>
#include <irq_kern.h>
#include <mem.h>
#include <os.h>
#include "virtio_sim.h"

static_assert(sizeof(struct virtio_sim_msg) == VIRTIO_SIM_MSG_SIZE);

/* logic_iomem maps a region in areas of 16 MiB; a larger window would alias. */
#define VIRTIO_SIM_MAX_WINDOW	0x1000000

static int fd = -1;
module_param(fd, int, 0444);
MODULE_PARM_DESC(fd, "access channel socket (inherited file descriptor)");

static int irq_fd = -1;
module_param(irq_fd, int, 0444);
MODULE_PARM_DESC(irq_fd, "interrupt channel socket (inherited file descriptor)");

static unsigned long base = 0x40000000UL;
module_param(base, ulong, 0444);
MODULE_PARM_DESC(base, "physical address of the device's MMIO window");

/*
 * Test hooks: writing an interrupt number to /sys/module/virtio_sim/parameters/disable_irq
 * (enable_irq) calls disable_irq() (enable_irq()) on it, so that a test in the guest can
 * disable a device's interrupt the way a driver does.
 */
static int virtio_sim_set_irq_state(const char *val, const struct kernel_param *kp)
{
	unsigned int irq;
	int err = kstrtouint(val, 0, &irq);

	if (err)
		return err;
	if (!irq_to_desc(irq))
		return -EINVAL;
	if (kp->arg)
		enable_irq(irq);
	else
		disable_irq(irq);
	return 0;
}

static const struct kernel_param_ops virtio_sim_irq_state_ops = {
	.set = virtio_sim_set_irq_state,
};
module_param_cb(disable_irq, &virtio_sim_irq_state_ops, NULL, 0200);
module_param_cb(enable_irq, &virtio_sim_irq_state_ops, (void *)1, 0200);

/* Raw: accesses are made from irq chip callbacks, under the (raw) irq descriptor lock. */
static DEFINE_RAW_SPINLOCK(virtio_sim_lock);

static struct resource virtio_sim_window = {
	.name = "virtio-sim",
	.flags = IORESOURCE_MEM,
};

static struct irq_domain *virtio_sim_msi_domain;
static DECLARE_BITMAP(virtio_sim_msi_used, VIRTIO_SIM_MSI_VECTORS);
static DECLARE_BITMAP(virtio_sim_msi_resend, VIRTIO_SIM_MSI_VECTORS);
static DEFINE_MUTEX(virtio_sim_msi_mutex);

static const char *virtio_sim_op_name(unsigned int op)
{
	switch (op) {
	case VIRTIO_SIM_HELLO:
		return "hello";
	case VIRTIO_SIM_READ:
		return "read";
	case VIRTIO_SIM_WRITE:
		return "write";
	default:
		return "unknown";
	}
}

/*
 * One request and its reply. Interrupts stay off in between: an interrupt handler's own
 * accesses must not interleave with this one on the channel, and an IRQ event the simulation
 * sent while answering is handled as soon as they are back on, right after this access. A
 * failure is reported before they are back on, so that the panic names this access and not
 * what the pending interrupt's handler then finds.
 */
static void virtio_sim_transfer(struct virtio_sim_msg *msg)
{
	const unsigned int op = msg->op;
	const unsigned long long offset = msg->offset;
	unsigned long flags;
	int err;

	raw_spin_lock_irqsave(&virtio_sim_lock, flags);
	err = virtio_sim_user_send(fd, msg);
	if (!err)
		err = virtio_sim_user_receive(fd, msg);

	if (err == -EPIPE)
		panic("virtio-sim: the simulation closed the access channel during a %s at %#llx\n",
		      virtio_sim_op_name(op), offset);
	if (err == -EPROTO)
		panic("virtio-sim: truncated message on the access channel during a %s at %#llx\n",
		      virtio_sim_op_name(op), offset);
	if (err)
		panic("virtio-sim: %s at %#llx failed on the access channel: error %d\n",
		      virtio_sim_op_name(op), offset, err);
	if (msg->op != op)
		panic("virtio-sim: reply to a %s at %#llx is a %s\n", virtio_sim_op_name(op),
		      offset, virtio_sim_op_name(msg->op));
	if (msg->size != VIRTIO_SIM_OK)
		panic("virtio-sim: the simulation refused a %s at %#llx (status %u)\n",
		      virtio_sim_op_name(op), offset, msg->size);
	raw_spin_unlock_irqrestore(&virtio_sim_lock, flags);
}

static unsigned long virtio_sim_read(void *priv, unsigned int offset, int size)
{
	struct virtio_sim_msg msg = {
		.op = VIRTIO_SIM_READ, .size = size, .offset = offset,
	};

	virtio_sim_transfer(&msg);
	return msg.value;
}

static void virtio_sim_write(void *priv, unsigned int offset, int size, unsigned long val)
{
	struct virtio_sim_msg msg = {
		.op = VIRTIO_SIM_WRITE, .size = size, .offset = offset, .value = val,
	};

	virtio_sim_transfer(&msg);
}

static const struct logic_iomem_ops virtio_sim_ops = {
	.read = virtio_sim_read,
	.write = virtio_sim_write,
};

/* Offsets passed to the ops are relative to the start of the window. */
static long virtio_sim_map(unsigned long offset, size_t size,
			   const struct logic_iomem_ops **ops, void **priv)
{
	*ops = &virtio_sim_ops;
	*priv = NULL;
	return offset;
}

static const struct logic_iomem_region_ops virtio_sim_region_ops = {
	.map = virtio_sim_map,
};

/* The MSI parent domain: one vector per hardware number, messages composed here. */

static void virtio_sim_compose_msi_msg(struct irq_data *d, struct msi_msg *msg)
{
	msg->address_hi = (u64)VIRTIO_SIM_MSI_ADDRESS >> 32;
	msg->address_lo = (u32)VIRTIO_SIM_MSI_ADDRESS;
	msg->data = d->hwirq;
}

/*
 * An MSI that arrives while its interrupt is disabled is only marked pending; enable_irq()
 * then asks the chip hierarchy to send it again (UML has no software resend). The vector is
 * delivered once more from irq work.
 */
static void virtio_sim_msi_resend_work(struct irq_work *work)
{
	unsigned long vector;

	for_each_set_bit(vector, virtio_sim_msi_resend, VIRTIO_SIM_MSI_VECTORS) {
		clear_bit(vector, virtio_sim_msi_resend);
		generic_handle_domain_irq(virtio_sim_msi_domain, vector);
	}
}

static DEFINE_IRQ_WORK(virtio_sim_msi_resend_irq_work, virtio_sim_msi_resend_work);

static int virtio_sim_msi_retrigger(struct irq_data *d)
{
	set_bit(d->hwirq, virtio_sim_msi_resend);
	irq_work_queue(&virtio_sim_msi_resend_irq_work);
	return 1;
}

static struct irq_chip virtio_sim_msi_chip = {
	.name = "virtio-sim-msi",
	.irq_compose_msi_msg = virtio_sim_compose_msi_msg,
	.irq_retrigger = virtio_sim_msi_retrigger,
};

static void virtio_sim_msi_free(struct irq_domain *domain, unsigned int virq,
				unsigned int nr_irqs)
{
	unsigned int i;

	mutex_lock(&virtio_sim_msi_mutex);
	for (i = 0; i < nr_irqs; i++) {
		struct irq_data *d = irq_domain_get_irq_data(domain, virq + i);

		__clear_bit(d->hwirq, virtio_sim_msi_used);
		irq_domain_reset_irq_data(d);
	}
	mutex_unlock(&virtio_sim_msi_mutex);
}

static int virtio_sim_msi_alloc(struct irq_domain *domain, unsigned int virq,
				unsigned int nr_irqs, void *arg)
{
	unsigned int i;
	unsigned long vector;

	mutex_lock(&virtio_sim_msi_mutex);
	for (i = 0; i < nr_irqs; i++) {
		vector = find_first_zero_bit(virtio_sim_msi_used, VIRTIO_SIM_MSI_VECTORS);
		if (vector >= VIRTIO_SIM_MSI_VECTORS) {
			mutex_unlock(&virtio_sim_msi_mutex);
			if (i)
				virtio_sim_msi_free(domain, virq, i);
			return -ENOSPC;
		}
		__set_bit(vector, virtio_sim_msi_used);
		irq_domain_set_info(domain, virq + i, vector, &virtio_sim_msi_chip, NULL,
				    handle_simple_irq, NULL, NULL);
	}
	mutex_unlock(&virtio_sim_msi_mutex);
	return 0;
}

static const struct irq_domain_ops virtio_sim_msi_domain_ops = {
	.alloc = virtio_sim_msi_alloc,
	.free = virtio_sim_msi_free,
};

/* An MSI message from the device: the interrupt of the vector it names, or an error. */
static void virtio_sim_deliver_msi(u64 address, u64 data)
{
	if (address != VIRTIO_SIM_MSI_ADDRESS || data >= VIRTIO_SIM_MSI_VECTORS ||
	    !test_bit(data, virtio_sim_msi_used))
		panic("virtio-sim: the device wrote MSI data %#llx to %#llx, a message no vector "
		      "of the guest has\n", data, address);
	if (generic_handle_domain_irq(virtio_sim_msi_domain, data))
		panic("virtio-sim: MSI vector %llu has no interrupt\n", data);
}

/*
 * The interrupt channel's handler: consumes the events. The interrupt is shared with
 * virtio_mmio's vm_interrupt, which is called after this one and reads the device's
 * InterruptStatus itself. MSI messages are delivered here, each as its vector's interrupt.
 */
static irqreturn_t virtio_sim_interrupt(int irq, void *dev_id)
{
	struct virtio_sim_msg msg;
	irqreturn_t ret = IRQ_NONE;
	int err;

	while (!(err = virtio_sim_user_poll(irq_fd, &msg))) {
		if (msg.op == VIRTIO_SIM_MSI)
			virtio_sim_deliver_msi(msg.offset, msg.value);
		else if (msg.op != VIRTIO_SIM_IRQ)
			panic("virtio-sim: message %u on the interrupt channel\n", msg.op);
		ret = IRQ_HANDLED;
	}
	if (err == -EPIPE)
		panic("virtio-sim: the simulation closed the interrupt channel\n");
	if (err != -EAGAIN)
		panic("virtio-sim: interrupt channel failed: error %d\n", err);
	return ret;
}

static int __init virtio_sim_init(void)
{
	struct virtio_sim_msg msg = {
		.op = VIRTIO_SIM_HELLO, .size = VIRTIO_SIM_VERSION,
	};
	struct platform_device *pdev;
	struct fwnode_handle *fwnode;
	struct resource resources[2];
	unsigned long long mem_offset;
	unsigned long window;
	int mem_fd, irq, err;

	if (fd < 0)
		return 0;
	if (irq_fd < 0)
		panic("virtio-sim: virtio_sim.fd is set but virtio_sim.irq_fd is not\n");

	mem_fd = phys_mapping(0, &mem_offset);
	msg.offset = mem_offset;
	msg.value = high_physmem - uml_physmem;
	do {
		err = os_sendmsg_fds(fd, &msg, sizeof(msg), &mem_fd, 1);
	} while (err == -EINTR);
	if (err != sizeof(msg))
		panic("virtio-sim: cannot send the hello on fd %d: error %d\n", fd, err);
	err = virtio_sim_user_receive(fd, &msg);
	if (err)
		panic("virtio-sim: no reply to the hello on fd %d: error %d\n", fd, err);
	if (msg.op != VIRTIO_SIM_HELLO || msg.size != VIRTIO_SIM_OK)
		panic("virtio-sim: the simulation refused the hello (op %u, status %u)\n",
		      msg.op, msg.size);
	window = msg.value;
	if (!window || window & (PAGE_SIZE - 1) || window > VIRTIO_SIM_MAX_WINDOW)
		panic("virtio-sim: window size %#lx is not a whole number of pages up to %#x\n",
		      window, VIRTIO_SIM_MAX_WINDOW);

	virtio_sim_window.start = base;
	virtio_sim_window.end = base + window - 1;
	err = logic_iomem_add_region(&virtio_sim_window, &virtio_sim_region_ops);
	if (err)
		panic("virtio-sim: cannot own %pR: error %d\n", &virtio_sim_window, err);

	irq = um_request_irq(UM_IRQ_ALLOC, irq_fd, IRQ_READ, virtio_sim_interrupt,
			     IRQF_SHARED, "virtio-sim", &virtio_sim_window);
	if (irq < 0)
		panic("virtio-sim: cannot make an interrupt of fd %d: error %d\n", irq_fd, irq);

	fwnode = irq_domain_alloc_named_fwnode("virtio-sim-msi");
	virtio_sim_msi_domain = fwnode ? irq_domain_create_linear(fwnode, VIRTIO_SIM_MSI_VECTORS,
						&virtio_sim_msi_domain_ops, NULL) : NULL;
	if (!virtio_sim_msi_domain)
		panic("virtio-sim: cannot create the MSI domain\n");
	irq_domain_update_bus_token(virtio_sim_msi_domain, DOMAIN_BUS_NEXUS);

	resources[0] = (struct resource)DEFINE_RES_MEM(base, window);
	resources[1] = (struct resource)DEFINE_RES_IRQ(irq);
	/* Added only once its MSI domain is set: the driver may probe it at once. */
	pdev = platform_device_alloc("virtio-mmio", 0);
	if (!pdev || platform_device_add_resources(pdev, resources, ARRAY_SIZE(resources)))
		panic("virtio-sim: cannot allocate the virtio-mmio device\n");
	dev_set_msi_domain(&pdev->dev, virtio_sim_msi_domain);
	err = platform_device_add(pdev);
	if (err)
		panic("virtio-sim: cannot register the virtio-mmio device: %d\n", err);

	pr_info("virtio-sim: window %pR, irq %d, %lu MiB of guest memory shared\n",
		&virtio_sim_window, irq, (high_physmem - uml_physmem) >> 20);
	return 0;
}
device_initcall(virtio_sim_init);
