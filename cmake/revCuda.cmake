# rev::cuda: the CUDA backend's usage requirements (included when REV_WITH_CUDA is ON).
# Only packaging: it links rev::rev, the CUDA runtime, cuBLAS and cuDNN, and defines
# REV_WITH_CUDA=1. CMake's CUDAToolkit module has no cuDNN target, so cuDNN is found by name.
find_package(CUDAToolkit REQUIRED)
find_library(REV_CUDNN_LIBRARY NAMES cudnn
  HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}
  PATH_SUFFIXES lib64 lib lib/x64
  DOC "cuDNN library linked by rev::cuda")
if(NOT REV_CUDNN_LIBRARY)
  message(FATAL_ERROR "REV_WITH_CUDA is ON but cuDNN (libcudnn) was not found; set REV_CUDNN_LIBRARY to its path")
endif()
find_path(REV_CUDNN_INCLUDE_DIR NAMES cudnn.h
  HINTS ${CUDAToolkit_INCLUDE_DIRS}
  DOC "Directory holding cudnn.h")

add_library(rev_cuda INTERFACE)
add_library(rev::cuda ALIAS rev_cuda)
set_target_properties(rev_cuda PROPERTIES EXPORT_NAME cuda)
target_link_libraries(rev_cuda INTERFACE rev::rev CUDA::cudart CUDA::cublas
  # The installed package finds cuDNN again on the consumer's machine (revConfig.cmake).
  $<BUILD_INTERFACE:${REV_CUDNN_LIBRARY}>)
if(REV_CUDNN_INCLUDE_DIR)
  target_include_directories(rev_cuda INTERFACE $<BUILD_INTERFACE:${REV_CUDNN_INCLUDE_DIR}>)
endif()
# EIGEN_NO_CUDA: rev's Eigen code is host code; without it Eigen marks its functions
# __host__ __device__ under nvcc and they call constexpr host functions (nvcc warning 20015).
target_compile_definitions(rev_cuda INTERFACE REV_WITH_CUDA=1 EIGEN_NO_CUDA)
# rev's kernels are __device__ lambdas launched by rev::gpu::for_each. Functions they call are
# marked REV_HOST_DEVICE; --expt-relaxed-constexpr is deliberately not used: it makes every
# constexpr function a device function too, and cicc then needs over 24 GB for a zoo model's
# translation unit (measured: RevBiFPN-S0, killed at 24 GB; 1 GB without). C++20 is asked for by
# flag: CMake releases before 3.27 have no CUDA20 dialect for nvcc 13.
target_compile_options(rev_cuda INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:--extended-lambda -std=c++20>)
