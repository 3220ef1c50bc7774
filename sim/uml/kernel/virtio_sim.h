/* SPDX-License-Identifier: GPL-2.0 */
/*
 * virtio-sim: the messages between the User-Mode Linux bridge (virtio_sim_kern.c) and the
 * simulation process (sim/uml/protocol.py reads the numbers below from this file, so they are
 * written only here).
 *
 * Both channels are SOCK_SEQPACKET sockets inherited from the simulation process, and every
 * message is one struct virtio_sim_msg. On the access channel the guest sends a request and
 * waits for its reply; the simulation sends nothing else there. On the interrupt channel the
 * simulation sends events; the guest never writes to it.
 *
 *   HELLO  guest -> sim   size = VIRTIO_SIM_VERSION, offset = offset of guest physical address 0
 *                         in the memory file, value = guest memory size; the memory file's
 *                         descriptor is attached (SCM_RIGHTS).
 *          reply          size = status, value = size of the device's MMIO window.
 *   READ   guest -> sim   size = 1, 2, 4 or 8, offset = byte offset in the window.
 *          reply          size = status, value = the data read.
 *   WRITE  guest -> sim   size, offset, value = the data to write.
 *          reply          size = status.
 *   IRQ    sim -> guest   (interrupt channel) the device's interrupt line rose, or is still high
 *                         after the driver acknowledged; size, offset and value are 0. Events
 *                         coalesce: the guest takes all that are queued in one interrupt.
 *   MSI    sim -> guest   (interrupt channel) the device wrote an MSI message: offset = its
 *                         address, value = its data. The bridge's MSI domain composes every
 *                         message as address VIRTIO_SIM_MSI_ADDRESS, data = the vector's number
 *                         in that domain; a message it did not compose is an error.
 *
 * A reply echoes the request's op. Status VIRTIO_SIM_OK is the only one a working simulation
 * sends; VIRTIO_SIM_REFUSED says the request was malformed, and the simulation closes both
 * channels after it. A packet that is not one whole message gets no reply: the channels close.
 */
#ifndef __VIRTIO_SIM_H
#define __VIRTIO_SIM_H

#define VIRTIO_SIM_VERSION	1

#define VIRTIO_SIM_HELLO	1
#define VIRTIO_SIM_READ		2
#define VIRTIO_SIM_WRITE	3
#define VIRTIO_SIM_IRQ		4
#define VIRTIO_SIM_MSI		5

/* The address of every MSI message the bridge composes, and how many vectors it has. */
#define VIRTIO_SIM_MSI_ADDRESS	0xfee00000
#define VIRTIO_SIM_MSI_VECTORS	64

#define VIRTIO_SIM_OK		0
#define VIRTIO_SIM_REFUSED	1

#define VIRTIO_SIM_MSG_SIZE	24

struct virtio_sim_msg {
	unsigned int op;
	unsigned int size;
	unsigned long long offset;
	unsigned long long value;
};

/* virtio_sim_user.c: host-side I/O, 0 or a negative errno. */
int virtio_sim_user_send(int fd, const struct virtio_sim_msg *msg);
int virtio_sim_user_receive(int fd, struct virtio_sim_msg *msg);
int virtio_sim_user_poll(int fd, struct virtio_sim_msg *msg);

#endif
