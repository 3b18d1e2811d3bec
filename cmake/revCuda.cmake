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
target_compile_definitions(rev_cuda INTERFACE REV_WITH_CUDA=1)
