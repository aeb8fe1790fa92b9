/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* proto.c — STUB: the VMM protocol codec (DESIGN §5). */
