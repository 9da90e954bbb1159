//go:build !(amd64 || arm64 || ppc64 || ppc64le || mips64 || mips64le || riscv64 || s390x || loong64)

package storagebolt

// initialMmap is the initial size of the mapping of the database file.
const initialMmap = 0
