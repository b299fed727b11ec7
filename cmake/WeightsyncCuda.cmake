# The CUDA conversion kernels (src/convert/cuda) are built only where nvcc works; everywhere else
# that folder builds a stub reporting "built without CUDA", and nothing else needs the toolkit.
# Sets WEIGHTSYNC_HAVE_CUDA. The language must be enabled here, at the top level, because the
# GPU programs that link the kernels live in several folders (src/convert/cuda, bench).
option(WEIGHTSYNC_ENABLE_CUDA "Build the CUDA conversion kernels when nvcc is found" ON)
set(WEIGHTSYNC_HAVE_CUDA OFF)
if(WEIGHTSYNC_ENABLE_CUDA)
  # check_language looks on PATH only; the toolkit's usual home is /usr/local/cuda.
  if(NOT DEFINED ENV{CUDACXX} AND NOT CMAKE_CUDA_COMPILER)
    find_program(WEIGHTSYNC_NVCC nvcc HINTS ENV CUDA_HOME /usr/local/cuda PATH_SUFFIXES bin)
    if(WEIGHTSYNC_NVCC)
      set(ENV{CUDACXX} "${WEIGHTSYNC_NVCC}")
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # Hopper (H100/H200) machine code; set it on the command line to build for other GPUs.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    # The static runtime: programs need only the driver (libcuda.so.1, which it dlopens) at run
    # time, and still start without one.
    set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(WEIGHTSYNC_HAVE_CUDA ON)
    # CUDA sources follow CMAKE_CXX_STANDARD (C++20; they include the library's headers), and
    # CMake 3.25 does not know nvcc's flag for that dialect yet.
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    # Bit-exact results: no contraction into FMAs (the kernels' FMAs are explicit intrinsics),
    # IEEE division, subnormals kept. nvcc's defaults, stated so a global flag cannot change them.
    # 2810: nvcc warns when a [[nodiscard]] Status is assigned (status = Check(...)), which is
    # the point of the assignment.
    set(WEIGHTSYNC_CUDA_FLAGS --fmad=false -prec-div=true -ftz=false -diag-suppress=2810)
    message(STATUS "weightsync: CUDA conversion kernels for sm_${CMAKE_CUDA_ARCHITECTURES}")
  else()
    message(STATUS "weightsync: nvcc not found or not working; CUDA conversion reports unavailable")
  endif()
endif()
