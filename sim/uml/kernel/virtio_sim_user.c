// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-sim: the host side of the bridge's socket I/O (compiled against the host's headers,
 * as UML's *_user.c files are). See virtio_sim.h for the messages.
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "virtio_sim.h"

/* One message out; the socket keeps message boundaries (SOCK_SEQPACKET). */
int virtio_sim_user_send(int fd, const struct virtio_sim_msg *msg)
{
	ssize_t n;

	do {
		n = send(fd, msg, sizeof(*msg), 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == sizeof(*msg) ? 0 : -EPROTO;
}

static int receive(int fd, struct virtio_sim_msg *msg, int flags)
{
	ssize_t n;

	do {
		n = recv(fd, msg, sizeof(*msg), flags);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;		/* the simulation closed the channel */
	return n == sizeof(*msg) ? 0 : -EPROTO;	/* a truncated message */
}

/* Wait for one message. */
int virtio_sim_user_receive(int fd, struct virtio_sim_msg *msg)
{
	return receive(fd, msg, 0);
}

/* One message if there is one: 0, or -EAGAIN when there is none. */
int virtio_sim_user_poll(int fd, struct virtio_sim_msg *msg)
{
	return receive(fd, msg, MSG_DONTWAIT);
}
