// A CPU allocator that backs large tensors with transparent huge pages and caches nothing.
//
// glibc serves a request above its mmap threshold (at most 32 MiB on 64-bit Linux) with a
// fresh mmap and gives it back with munmap when the tensor is freed: every training step
// page-faults its large tensors again, 4 KiB at a time, and the random row gathers of the
// attention kernels from those tensors miss the TLB on almost every row. This allocator
// serves requests of at least `min_bytes` itself: an anonymous mapping aligned to 2 MiB,
// marked MADV_HUGEPAGE before its first touch, unmapped when the tensor is freed. The kernel
// then faults 2 MiB at a time and one TLB entry covers 512 rows of 4 KiB. Smaller requests go
// to the allocator it replaced, unchanged. Nothing is held after a free: peak memory is that
// of glibc's default policy (the size is rounded up to 4 KiB, as glibc's own mmap does).
//
// Installed process-wide with c10::SetCPUAllocator (every CPU tensor allocated while it is
// in place, by any library); removing it puts the previous allocator back, and blocks it
// handed out stay valid: each carries its own deleter.
#include <torch/extension.h>

#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace {

constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kSmallPage = 4096;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Mapped blocks by data pointer: their length, for munmap and for raw_deleter's callers.
// Every count is kept under the one mutex, beside the map it counts.
class BlockTable {
 public:
  void add(void* data, size_t length) {
    std::lock_guard<std::mutex> guard(mutex_);
    length_.emplace(data, length);
    bytes_ += length;
    served_ += 1;
  }

  // The block's length, removed from the table; 0 when the table does not hold it.
  size_t take(void* data) {
    std::lock_guard<std::mutex> guard(mutex_);
    auto found = length_.find(data);
    if (found == length_.end()) return 0;
    const size_t length = found->second;
    length_.erase(found);
    bytes_ -= length;
    return length;
  }

  bool holds(void* data) {
    std::lock_guard<std::mutex> guard(mutex_);
    return length_.count(data) > 0;
  }

  // (live blocks, live bytes mapped, blocks handed out since the process started)
  std::tuple<int64_t, int64_t, int64_t> counts() {
    std::lock_guard<std::mutex> guard(mutex_);
    return {static_cast<int64_t>(length_.size()), static_cast<int64_t>(bytes_),
            static_cast<int64_t>(served_)};
  }

 private:
  std::mutex mutex_;
  std::unordered_map<void*, size_t> length_;
  size_t bytes_ = 0;
  size_t served_ = 0;
};

BlockTable& table() {
  static BlockTable* instance = new BlockTable();  // never destroyed: tensors may outlive main
  return *instance;
}

void* map_huge_aligned(size_t length) {
  // Over-map by one huge page and cut the ends, so the block starts on a 2 MiB boundary and
  // every whole 2 MiB stretch of it can be one huge page.
  const size_t span = length + kHugePage;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t start = (base + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
  const size_t head = start - base;
  const size_t tail = span - head - length;
  if (head) munmap(raw, head);
  if (tail) munmap(reinterpret_cast<void*>(start + length), tail);
  void* block = reinterpret_cast<void*>(start);
#ifdef MADV_HUGEPAGE
  madvise(block, length, MADV_HUGEPAGE);  // advice only: where THP is off, 4 KiB pages
#endif
  return block;
}

void free_huge(void* data) {
  if (data == nullptr) return;
  const size_t length = table().take(data);
  if (length == 0) {  // cannot happen; a deleter must not throw
    TORCH_WARN("gatkit huge-page allocator: a block it does not know was freed; left mapped");
    return;
  }
  c10::profiledCPUMemoryReporter().Delete(data);
  munmap(data, length);
}

class HugePageAllocator final : public at::Allocator {
 public:
  HugePageAllocator(at::Allocator* fallback, size_t min_bytes)
      : fallback_(fallback), min_bytes_(min_bytes) {}

  at::DataPtr allocate(size_t n) override {
    if (n == 0 || n < min_bytes_) return fallback_->allocate(n);
    const size_t length = round_up(n, kSmallPage);
    void* data = map_huge_aligned(length);
    TORCH_CHECK_WITH(OutOfMemoryError, data != nullptr, "DefaultCPUAllocator: not enough memory: ",
                     "you tried to allocate ", n, " bytes (gatkit huge-page allocator: mmap failed).");
    table().add(data, length);
    c10::profiledCPUMemoryReporter().New(data, n);
    return {data, data, &free_huge, at::Device(at::DeviceType::CPU)};
  }

  // The same function for every block: a huge block is found in the table, anything else
  // came from the fallback and goes back through the fallback's raw deleter.
  at::DeleterFnPtr raw_deleter() const override {
    return fallback_->raw_deleter() != nullptr ? &raw_delete : nullptr;
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  at::Allocator* fallback() const { return fallback_; }
  size_t min_bytes() const { return min_bytes_; }

 private:
  static void raw_delete(void* data);
  at::Allocator* fallback_;
  size_t min_bytes_;
};

struct Installed {
  std::mutex mutex;
  HugePageAllocator* allocator = nullptr;  // the one in place, or nullptr
};

Installed& installed() {
  static Installed* instance = new Installed();
  return *instance;
}

// The allocator the first installation replaced; every later installation must find the
// same one in place (huge_pages_install), so raw_delete knows where a small block came from.
// Allocator objects are never deleted: tensors may hold blocks of one removed long ago.
std::atomic<at::Allocator*> first_fallback{nullptr};

void HugePageAllocator::raw_delete(void* data) {
  if (table().holds(data)) {
    free_huge(data);
    return;
  }
  // Every installed allocator's fallback is first_fallback (huge_pages_install checks), and
  // raw_deleter is only offered when that fallback has one.
  first_fallback.load()->raw_deleter()(data);
}

}  // namespace

// Put the allocator in place (min_bytes: the smallest request it serves itself). Returns
// false, changing nothing, when it is already in place, or when another library's allocator
// now stands where it would go (installed since gatkit's was last removed, or of a higher
// priority): raw frees of small blocks are passed to the first allocator it replaced.
bool huge_pages_install(int64_t min_bytes) {
  TORCH_CHECK(min_bytes >= 0, "min_bytes must be non-negative, got ", min_bytes);
  Installed& state = installed();
  std::lock_guard<std::mutex> guard(state.mutex);
  if (state.allocator != nullptr) return false;
  at::Allocator* current = c10::GetCPUAllocator();
  at::Allocator* expected = nullptr;
  first_fallback.compare_exchange_strong(expected, current);
  if (first_fallback.load() != current) return false;
  auto* allocator = new HugePageAllocator(current, static_cast<size_t>(min_bytes));  // kept
  c10::SetCPUAllocator(allocator, /*priority=*/0);
  if (c10::GetCPUAllocator() != allocator) return false;  // a higher-priority one stays
  state.allocator = allocator;
  return true;
}

// Put the previous allocator back. Returns false when gatkit's was not in place.
bool huge_pages_remove() {
  Installed& state = installed();
  std::lock_guard<std::mutex> guard(state.mutex);
  if (state.allocator == nullptr) return false;
  TORCH_CHECK(c10::GetCPUAllocator() == state.allocator,
              "gatkit huge-page allocator: another library replaced it; not removing");
  c10::SetCPUAllocator(state.allocator->fallback(), /*priority=*/0);
  state.allocator = nullptr;  // the object stays alive for raw_delete and nothing else
  return true;
}

// raw_allocate and raw_deallocate of n bytes through the CPU allocator in place, the bytes
// written and read back in between (for the tests: the raw path of both kinds of block).
bool huge_pages_raw_roundtrip(int64_t n) {
  TORCH_CHECK(n > 0, "n must be positive");
  at::Allocator* allocator = c10::GetCPUAllocator();
  auto* bytes = static_cast<unsigned char*>(allocator->raw_allocate(static_cast<size_t>(n)));
  for (int64_t i = 0; i < n; ++i) bytes[i] = static_cast<unsigned char>(i * 7);
  bool same = true;
  for (int64_t i = 0; i < n; ++i) same = same && bytes[i] == static_cast<unsigned char>(i * 7);
  allocator->raw_deallocate(bytes);
  return same;
}

// (in place, min_bytes, live blocks, live bytes mapped, blocks served since start)
std::tuple<bool, int64_t, int64_t, int64_t, int64_t> huge_pages_stats() {
  Installed& state = installed();
  std::lock_guard<std::mutex> guard(state.mutex);
  const bool on = state.allocator != nullptr;
  const auto [blocks, bytes, served] = table().counts();
  return {on, on ? static_cast<int64_t>(state.allocator->min_bytes()) : 0, blocks, bytes, served};
}
