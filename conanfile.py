# Conan 2 recipe for rev, a header-only C++20 library of reversible neural networks.
#
#   conan create . -pr:a conan/profiles/debian12 --build=missing
#
# (docs/packaging.md has the other commands and what they were verified with.)
import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load, save
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class RevConan(ConanFile):
    name = "rev"
    description = "Reversible neural networks in header-only C++20"
    license = "Apache-2.0"
    topics = ("neural-networks", "reversible-networks", "deep-learning", "header-only")
    package_type = "header-library"

    # The settings are declared only so that validate() can check the C++ standard and
    # package_info() can name the OS's thread library; package_id() clears them, so one package
    # serves every compiler, build type and architecture.
    settings = "os", "arch", "compiler", "build_type"
    options = {
        "with_cuda": [True, False],
        "with_xtensor": [True, False],
        "with_zlib": [True, False],
    }
    default_options = {
        # The CUDA backend is opt-in: CPU users must never need nvcc, the CUDA toolkit or cuDNN.
        "with_cuda": False,
        # xtensor only serves <rev/interop/xtensor.hpp>; <rev/rev.hpp> never includes it, and it
        # brings xtl and xsimd along, so it is off unless asked for.
        "with_xtensor": False,
        # zlib serves <rev/data/*.hpp> (the gzipped Fashion-MNIST files of the training guide and
        # the flagship example). It is small and everywhere, and the CMake target rev::rev links it
        # whenever CMake finds it, so the Conan package offers it by default too.
        "with_zlib": True,
    }
    # The package holds headers only; nothing is built from the sources.
    no_copy_source = True
    exports_sources = "include/*", "LICENSE"

    def set_version(self):
        # One source of truth for the version: project(rev VERSION x.y.z ...) in CMakeLists.txt.
        if self.version:
            return
        cmakelists = load(self, os.path.join(self.recipe_folder, "CMakeLists.txt"))
        match = re.search(r"project\(\s*rev\s+VERSION\s+([0-9.]+)", cmakelists)
        if not match:
            raise RuntimeError("conanfile.py: no 'project(rev VERSION x.y.z' in CMakeLists.txt")
        self.version = match.group(1)

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # rev's public headers include these libraries' headers, so consumers need them too.
        self.requires("eigen/3.4.0", transitive_headers=True)
        if self.options.with_xtensor:
            self.requires("xtensor/0.24.3", transitive_headers=True)
        if self.options.with_zlib:
            self.requires("zlib/[>=1.2.11 <2]", transitive_headers=True, transitive_libs=True)
        # CUDA, cuBLAS and cuDNN are not Conan packages here: they come with the NVIDIA driver and
        # toolkit installed on the machine (system dependencies, see package_info()).

    def package_id(self):
        # Headers only: the same files serve every setting and option. The options change only
        # what package_info() tells consumers (defines, system libraries, requirements).
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def package(self):
        # Copy the headers instead of running the project's CMake install: the package has no
        # binary, Conan's CMakeDeps/PkgConfigDeps write the rev::rev target and rev.pc from
        # package_info() below (with the dependencies Conan resolved, not the ones CMake would find
        # on the packaging machine), and a copy needs neither a compiler nor CMake.
        copy(self, "LICENSE", src=self.source_folder, dst=os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", src=os.path.join(self.source_folder, "include"),
             dst=os.path.join(self.package_folder, "include"))
        copy(self, "*.cuh", src=os.path.join(self.source_folder, "include"),
             dst=os.path.join(self.package_folder, "include"))
        # The CMake package of the repository (cmake/revCuda.cmake) names the CUDA backend's
        # requirements rev::cuda; this module gives Conan consumers the same name. It is written
        # whatever the options (the package is shared by all of them) and loaded only with_cuda.
        save(self, os.path.join(self.package_folder, self._cuda_module),
             "# rev::cuda for Conan consumers (loaded by rev-config.cmake when rev/*:with_cuda=True).\n"
             "if(TARGET rev::rev AND NOT TARGET rev::cuda)\n"
             "  add_library(rev::cuda INTERFACE IMPORTED)\n"
             "  set_property(TARGET rev::cuda PROPERTY INTERFACE_LINK_LIBRARIES rev::rev)\n"
             "  set_property(TARGET rev::cuda PROPERTY INTERFACE_COMPILE_OPTIONS\n"
             "    $<$<COMPILE_LANGUAGE:CUDA>:--extended-lambda -std=c++20>)\n"
             "endif()\n")

    @property
    def _cuda_module(self):
        return os.path.join("lib", "cmake", "rev-conan-cuda.cmake")

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.set_property("cmake_file_name", "rev")
        self.cpp_info.set_property("cmake_target_name", "rev::rev")
        self.cpp_info.set_property("pkg_config_name", "rev")
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs.extend(["pthread", "m"])  # CMake's Threads::Threads
        if self.options.with_cuda:
            # The CUDA backend's code is compiled only where REV_WITH_CUDA is defined. The CUDA
            # runtime, cuBLAS and cuDNN are system libraries: the linker finds them in its default
            # directories, or in <root>/lib64 and <root>/lib (headers: <root>/include) when the
            # profile names the toolkit with  [conf] user.rev:cuda_root=/usr/local/cuda.
            # (Unlike the CMake package, where only rev::cuda carries them, here rev::rev carries
            # them too; rev::cuda is defined as a synonym so that the same CMakeLists.txt works.)
            self.cpp_info.defines.extend(["REV_WITH_CUDA=1", "EIGEN_NO_CUDA"])
            self.cpp_info.system_libs.extend(["cudart", "cublas", "cudnn"])
            cuda_root = self.conf.get("user.rev:cuda_root", check_type=str)
            if cuda_root:
                self.cpp_info.includedirs.append(os.path.join(cuda_root, "include"))
                self.cpp_info.libdirs.extend(
                    d for d in (os.path.join(cuda_root, "lib64"), os.path.join(cuda_root, "lib")) if os.path.isdir(d))
            self.cpp_info.set_property("cmake_build_modules", [self._cuda_module])
