// device.cu: which GPUs a run uses. Each device thread of analyze's pipeline selects its GPU once;
// the CUDA runtime keeps the current device per host thread, so the kernels, copies and allocations
// of that thread's gpu_* objects go to it.
#include "gpu_common.cuh"

extern "C" {
#include "gpu.h"
}

extern "C" int gpu_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" int gpu_set_device(int dev, skel_err *e) {
    cudaError_t err = cudaSetDevice(dev);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return skel_fail(e, "cannot use GPU %d: %s", dev, cudaGetErrorString(err));
    }
    return 0;
}
