/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Whether a process may hold llama.cpp data outside host memory: a ggml
 * backend for another device (libggml-cuda.so, -vulkan, ...) or a GPU runtime
 * (libcudart, libvulkan, ...) among its mapped files.
 */
#ifndef LLMTAP_BACKEND_H
#define LLMTAP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* path is a device backend or a GPU runtime library (by its file name). */
bool backend_is_device_lib(const char *path);

/*
 * 1 when pid maps one (its file name into name), 0 when none (all of
 * llama.cpp's buffers are in host memory), -errno when its maps cannot be read.
 */
int target_device_backend(pid_t pid, char *name, size_t len);

#endif
