/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Whether a process may hold llama.cpp data outside host memory. Host memory only
 * when every ggml library it maps is one llmtap knows to be host-only (libggml,
 * -base, -cpu*, -blas, -zendnn), no GPU runtime is mapped (libcudart, libvulkan,
 * ...) and the file with llama.cpp registers no other ggml backend; anything else,
 * a backend llmtap does not know included, is "maybe a device".
 */
#ifndef LLMTAP_BACKEND_H
#define LLMTAP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* path (by its file name) is a GPU runtime, or a ggml library not known to be host-only. */
bool backend_is_device_lib(const char *path);

/*
 * 0 when pid's llama.cpp buffers are all in host memory: no mapped file is a device
 * library (backend_is_device_lib), and core (the file that defines llama_decode, as
 * llmtap reads it; NULL: not looked at) defines no ggml_backend_<name>_reg but the
 * host backends' -- and, when ggml is not a mapped libggml, the CPU backend's (ggml
 * is in core: a static build); a mapped libggml without its CPU backend's library has
 * not loaded its backends yet (GGML_BACKEND_DL): 1. 1 otherwise, with what decided it into name (a file
 * or symbol name; "" when core could not be read or holds no ggml). -errno when
 * pid's maps cannot be read.
 */
int target_device_backend(pid_t pid, const char *core, char *name, size_t len);
/*
 * The same, but also 0 with the device backends whose synchronize() never throws
 * (ggml-cuda, -hip, -musa: they abort): 1 when a call that synchronizes may throw
 * (ggml-vulkan's does) or a backend llmtap does not know is there, with its name.
 */
int target_sync_may_throw(pid_t pid, const char *core, char *name, size_t len);

#endif
