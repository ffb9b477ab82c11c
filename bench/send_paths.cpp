// send_paths: what one HTTP response of N bytes costs the sending process on this kernel, over loopback, by
// each way a server can hand the kernel its bytes:
//   copy      sendmsg(header + body) from user memory (Granary's hits, wire-limit)
//   splice    sendmsg(header, MSG_MORE), then vmsplice of the body into a pipe and splice to the socket
//   sendfile  sendmsg(header, MSG_MORE), then sendfile from a file in the page cache (nginx's hits)
// Clients (a forked process, one thread per connection) send one byte and read the whole response.
// Prints responses/s and the server's CPU microseconds per response (getrusage), and each path's ratio to copy.
//
//   send_paths [--size 65536] [--conns 16] [--seconds 3] [--file /var/tmp/send_paths.bin]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

enum class Path { Copy, Splice, Sendfile };
const char* name(Path p) { return p == Path::Copy ? "copy" : p == Path::Splice ? "splice" : "sendfile"; }

bool sendAll(int s, const char* p, std::size_t n, int flags) {
  while (n > 0) {
    const ssize_t w = send(s, p, n, flags | MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

/// One connection's responses until the client goes; @return how many.
long serveOne(Path path, int s, const std::string& header, const char* body, std::size_t size, int file) {
  int pipeFd[2] = {-1, -1};
  if (path == Path::Splice) {
    if (pipe(pipeFd) != 0) return 0;
    fcntl(pipeFd[1], F_SETPIPE_SZ, 1 << 20);
  }
  long n = 0;
  char r;
  while (read(s, &r, 1) == 1) {
    bool ok = true;
    if (path == Path::Copy) {
      iovec iov[2] = {{const_cast<char*>(header.data()), header.size()}, {const_cast<char*>(body), size}};
      std::size_t left = header.size() + size;
      msghdr m{};
      m.msg_iov = iov;
      m.msg_iovlen = 2;
      while (ok && left > 0) {
        const ssize_t w = sendmsg(s, &m, MSG_NOSIGNAL);
        if (w <= 0) { ok = false; break; }
        left -= static_cast<std::size_t>(w);
        for (auto k = static_cast<std::size_t>(w); k > 0;) {  // advance the iovecs past what went
          iovec& v = m.msg_iov[0].iov_len ? m.msg_iov[0] : m.msg_iov[1];
          const std::size_t step = std::min(k, v.iov_len);
          v.iov_base = static_cast<char*>(v.iov_base) + step;
          v.iov_len -= step;
          k -= step;
        }
      }
    } else {
      ok = sendAll(s, header.data(), header.size(), MSG_MORE);
      std::size_t off = 0;
      while (ok && off < size) {
        if (path == Path::Sendfile) {
          off_t at = static_cast<off_t>(off);
          const ssize_t w = sendfile(s, file, &at, size - off);
          if (w <= 0) { ok = false; break; }
          off += static_cast<std::size_t>(w);
        } else {
          iovec v{const_cast<char*>(body) + off, size - off};
          const ssize_t in = vmsplice(pipeFd[1], &v, 1, 0);
          if (in <= 0) { ok = false; break; }
          for (ssize_t left = in; left > 0;) {
            const ssize_t w = splice(pipeFd[0], nullptr, s, nullptr, static_cast<std::size_t>(left), SPLICE_F_MOVE);
            if (w <= 0) { ok = false; break; }
            left -= w;
          }
          off += static_cast<std::size_t>(in);
        }
      }
    }
    if (!ok) break;
    ++n;
  }
  if (pipeFd[0] >= 0) close(pipeFd[0]), close(pipeFd[1]);
  return n;
}

struct Result {
  double perSec, cpuUs;
};

Result run(Path path, std::size_t size, int conns, int seconds, const char* body, int file) {
  const int ls = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(ls, 256) != 0 ||
      getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::perror("send_paths: listen");
    std::exit(1);
  }
  const std::string header = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(size) +
                             "\r\nETag: \"0123456789abcdef0123456789abcdef\"\r\nAccept-Ranges: bytes\r\n\r\n";
  rusage r0{}, r1{};  // (taken before any response: the servers start as each connection comes)
  getrusage(RUSAGE_SELF, &r0);
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {  // the clients
    std::vector<std::thread> clients;
    for (int c = 0; c < conns; ++c)
      clients.emplace_back([&] {
        const int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        std::vector<char> buf(header.size() + size);
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        while (std::chrono::steady_clock::now() < end) {
          if (write(s, "G", 1) != 1) break;
          for (std::size_t got = 0; got < buf.size();) {
            const ssize_t r = read(s, buf.data() + got, buf.size() - got);
            if (r <= 0) return (void)close(s);
            got += static_cast<std::size_t>(r);
          }
        }
        close(s);
      });
    for (auto& t : clients) t.join();
    _exit(0);
  }
  std::vector<std::thread> servers;
  std::atomic<long> total{0};
  for (int c = 0; c < conns; ++c) {
    const int s = accept(ls, nullptr, nullptr);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    servers.emplace_back([&, s] {
      total += serveOne(path, s, header, body, size, file);
      close(s);
    });
  }
  int status = 0;
  waitpid(pid, &status, 0);
  for (auto& t : servers) t.join();
  getrusage(RUSAGE_SELF, &r1);
  close(ls);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  const double cpu = secs(r1.ru_utime) - secs(r0.ru_utime) + secs(r1.ru_stime) - secs(r0.ru_stime);
  const double n = static_cast<double>(std::max<long>(1, total.load()));
  return {n / wall, 1e6 * cpu / n};
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t size = 65536;
  int conns = 16, seconds = 3;
  std::string filePath = "/var/tmp/send_paths.bin";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--size") size = std::strtoull(argv[i + 1], nullptr, 10);
    else if (k == "--conns") conns = std::atoi(argv[i + 1]);
    else if (k == "--seconds") seconds = std::atoi(argv[i + 1]);
    else if (k == "--file") filePath = argv[i + 1];
  }
  if (size == 0 || conns < 1 || conns > 512 || seconds < 1) {
    std::fprintf(stderr, "usage: send_paths [--size BYTES] [--conns N] [--seconds S] [--file PATH]\n");
    return 2;
  }
  // The body: its own anonymous mapping (never reused while the kernel may still hold its pages after a
  // vmsplice), and the same bytes in a file, read once so that they sit in the page cache.
  auto* body = static_cast<char*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (body == MAP_FAILED) return 1;
  std::memset(body, 'x', size);
  const int file = open(filePath.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (file < 0 || write(file, body, size) != static_cast<ssize_t>(size) || fsync(file) != 0) {
    std::perror("send_paths: file");
    return 1;
  }
  std::printf("| path | responses/s | server CPU us per response | CPU / copy's |\n|---|---|---|---|\n");
  double copyCpu = 0;
  for (Path p : {Path::Copy, Path::Splice, Path::Sendfile}) {
    const Result r = run(p, size, conns, seconds, body, file);
    if (p == Path::Copy) copyCpu = r.cpuUs;
    std::printf("| %s | %.0f | %.2f | %.2f |\n", name(p), r.perSec, r.cpuUs, r.cpuUs / copyCpu);
    std::fflush(stdout);
  }
  close(file);
  unlink(filePath.c_str());
}
