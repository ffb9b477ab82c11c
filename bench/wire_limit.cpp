// wire-limit: the fastest answer an HTTP server can give on this machine, as a bench target beside nginx and
// Granary (bench/peers.py, target "limit"). It does nothing but parse the request line and write bytes that
// are already in memory: no signature check, no cache lookup, no disk. The gap between it and a real server
// is the server's own cost; what it leaves is the kernel's and the client's, which no server can remove.
//
//   wire-limit --listen 127.0.0.1:PORT --origin 127.0.0.1:PORT [--threads 2] [--port-file F]
//
// A bucket-level request (a listing, HEAD or PUT of the bucket) is relayed to the origin, blocking (a bench
// prepares with them before timing). The keys and sizes in a listing are remembered, and a GET of a listed
// key is answered with that many bytes (all 'x'; up to 64 MiB) under a fixed header, by sendmsg from the
// object's own place in a pre-touched arena, as Granary's RAM tier answers a hit (HEAD: the header alone).
// A GET or HEAD of another key gets 404; other methods on a key get 405 (a body they carry is not read as
// requests: the rest of what the connection sent is dropped). Loopback only: it refuses other addresses.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

std::shared_mutex objectsMu;
struct Object {
  std::size_t size;
  std::size_t offset;  // in `arena`
};
std::unordered_map<std::string, Object> objects;  // "/bucket/key"
// Each listed object gets its own bytes (as each hit in a cache is a different buffer, mostly not in the
// CPU's caches): a 1 GiB arena of 'x', touched before serving, handed out in listing order and reused
// from its start once full.
std::vector<char> arena;
constexpr std::size_t kArenaSize = 1u << 30;
constexpr std::size_t kMaxSize = 64u << 20;  // larger listed objects get 404
std::size_t arenaNext = 0;
sockaddr_in originAddr{};

sockaddr_in parseAddr(const std::string& hp) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  const auto colon = hp.rfind(':');
  if (colon == std::string::npos || inet_pton(AF_INET, hp.substr(0, colon).c_str(), &a.sin_addr) != 1) {
    std::fprintf(stderr, "wire-limit: bad address %s\n", hp.c_str());
    std::exit(2);
  }
  if ((ntohl(a.sin_addr.s_addr) >> 24) != 127) {
    std::fprintf(stderr, "wire-limit: loopback addresses only\n");
    std::exit(2);
  }
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(hp.c_str() + colon + 1)));
  return a;
}

std::string uriDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::strtol(std::string(s.substr(i + 1, 2)).c_str(), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string response(int code, std::string_view reason, std::string_view type, std::size_t len) {
  return "HTTP/1.1 " + std::to_string(code) + " " + std::string(reason) + "\r\nContent-Type: " + std::string(type) +
         "\r\nContent-Length: " + std::to_string(len) +
         "\r\nETag: \"0123456789abcdef0123456789abcdef\"\r\nLast-Modified: Sat, 28 Nov 2026 00:00:00 GMT\r\n"
         "Accept-Ranges: bytes\r\nx-amz-request-id: 0000000000000000\r\n\r\n";
}

/// Relays one bucket-level request to the origin (blocking), remembers a listing's keys' sizes, returns the answer.
std::string relayListing(const std::string& request, const std::string& bucket) {
  std::string req = request.substr(0, request.size() - 2) + "Connection: close\r\n\r\n";
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  std::string in;
  if (connect(s, reinterpret_cast<sockaddr*>(&originAddr), sizeof originAddr) == 0 &&
      write(s, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
    char buf[65536];
    for (ssize_t n; (n = read(s, buf, sizeof buf)) > 0;) in.append(buf, static_cast<std::size_t>(n));
  }
  close(s);
  const auto end = in.find("\r\n\r\n");
  if (end == std::string::npos) return response(502, "Bad Gateway", "text/plain", 0);
  std::string head = in.substr(0, end), xml = in.substr(end + 4);
  const int code = std::atoi(head.c_str() + head.find(' ') + 1);
  if (head.find("chunked") != std::string::npos) {  // de-chunk
    std::string plain;
    for (std::size_t p = 0;;) {
      const std::size_t len = std::strtoul(xml.c_str() + p, nullptr, 16), eol = xml.find("\r\n", p);
      if (len == 0 || eol == std::string::npos) break;
      plain.append(xml, eol + 2, len);
      p = eol + 2 + len + 2;
    }
    xml = plain;
  }
  {
    std::unique_lock lk(objectsMu);
    for (std::size_t p = 0; (p = xml.find("<Key>", p)) != std::string::npos;) {
      const auto ke = xml.find("</Key>", p), sz = xml.find("<Size>", p);
      if (ke == std::string::npos || sz == std::string::npos) break;
      const std::size_t n = std::strtoull(xml.c_str() + sz + 6, nullptr, 10);
      // (keys come URL-encoded when the listing asked for encoding-type=url, as boto3 does)
      const std::string path = "/" + bucket + "/" + uriDecode(xml.substr(p + 5, ke - p - 5));
      if (n <= kMaxSize && !objects.contains(path)) {
        if (arenaNext + n > kArenaSize) arenaNext = 0;
        objects[path] = Object{n, arenaNext};
        arenaNext += (n + 63) & ~std::size_t{63};
      }
      p = ke;
    }
  }
  if (request.compare(0, 5, "HEAD ") == 0) return response(code, "Relayed", "application/xml", 0);
  return response(code, "Relayed", "application/xml", xml.size()) + xml;
}

struct Conn {
  int fd;
  std::string in;
  std::string head;          // the response header (and a small body) still to send
  std::size_t headOff = 0;
  std::size_t bodyLeft = 0;  // bytes of `arena` still to send after head, from bodyOff
  std::size_t bodyOff = 0;
};

/// Sends what the socket takes; true when the response is out.
bool pump(Conn& c) {
  while (c.headOff < c.head.size() || c.bodyLeft > 0) {
    iovec iov[2];
    int n = 0;
    if (c.headOff < c.head.size()) iov[n++] = {c.head.data() + c.headOff, c.head.size() - c.headOff};
    if (c.bodyLeft > 0) iov[n++] = {arena.data() + c.bodyOff, c.bodyLeft};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = static_cast<std::size_t>(n);
    ssize_t w = sendmsg(c.fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w <= 0) return false;
    auto sent = static_cast<std::size_t>(w);
    const std::size_t fromHead = std::min(sent, c.head.size() - c.headOff);
    c.headOff += fromHead;
    sent -= fromHead;
    c.bodyOff += sent;
    c.bodyLeft -= sent;
  }
  return true;
}

/// Starts the answer to each complete request in c.in; stops at one whose answer does not fit the socket.
void answer(Conn& c) {
  for (;;) {
    if (c.headOff < c.head.size() || c.bodyLeft > 0) {
      if (!pump(c)) return;
    }
    const auto end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) return;
    const std::string request = c.in.substr(0, end + 4);
    c.in.erase(0, end + 4);
    const auto sp1 = request.find(' '), sp2 = request.find(' ', sp1 + 1);
    const std::string target = request.substr(sp1 + 1, sp2 - sp1 - 1);
    const auto q = target.find('?');
    const std::string path = uriDecode(target.substr(0, q));
    c.head.clear();
    c.headOff = c.bodyOff = c.bodyLeft = 0;
    const auto keyAt = path.find('/', 1);
    if (keyAt == std::string::npos || keyAt + 1 == path.size() ||
        (q != std::string::npos && target.find("list-type=2", q) != std::string::npos)) {  // bucket level
      c.head = relayListing(request, path.substr(1, keyAt == std::string::npos ? std::string::npos : keyAt - 1));
      continue;
    }
    std::shared_lock lk(objectsMu);
    const auto it = objects.find(path);
    const bool get = request.compare(0, 4, "GET ") == 0, head = request.compare(0, 5, "HEAD ") == 0;
    if (it == objects.end() || !(get || head)) {
      c.head = response(404, "Not Found", "application/xml", 0);
      if (!get && !head) c.in.clear(), c.head = response(405, "Method Not Allowed", "application/xml", 0);
    } else {
      c.head = response(200, "OK", "binary/octet-stream", it->second.size);
      c.bodyLeft = get ? it->second.size : 0;
      c.bodyOff = it->second.offset;
    }
  }
}

void serve(int listener) {
  const int ep = epoll_create1(0);
  epoll_event ev{EPOLLIN, {.fd = listener}};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  std::unordered_map<int, Conn> conns;
  epoll_event evs[64];
  for (;;) {
    const int n = epoll_wait(ep, evs, 64, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = evs[i].data.fd;
      if (fd == listener) {
        const int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
        if (c < 0) continue;
        const int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns.emplace(c, Conn{c, {}, {}, 0, 0, 0});
        epoll_event ce{EPOLLIN | EPOLLOUT | EPOLLET, {.fd = c}};
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        continue;
      }
      Conn& c = conns.at(fd);
      bool closed = false;
      char buf[16384];
      for (;;) {
        const ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) c.in.append(buf, static_cast<std::size_t>(r));
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) closed = true;
        if (r <= 0) break;
      }
      if (c.in.size() > (1u << 20)) closed = true;
      if (!closed) answer(c);
      if (closed) {
        close(fd);
        conns.erase(fd);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string listenAt = "127.0.0.1:0", origin, portFile;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--listen") listenAt = argv[i + 1];
    else if (a == "--origin") origin = argv[i + 1];
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--port-file") portFile = argv[i + 1];
  }
  if (origin.empty() || threads < 1) {
    std::fprintf(stderr, "usage: wire-limit --origin 127.0.0.1:PORT [--listen 127.0.0.1:PORT] [--threads N] "
                         "[--port-file F]\n");
    return 2;
  }
  originAddr = parseAddr(origin);
  arena.assign(kArenaSize, 'x');
  sockaddr_in la = parseAddr(listenAt);
  const int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, reinterpret_cast<sockaddr*>(&la), sizeof la) != 0 || ::listen(ls, 1024) != 0) {
    std::perror("wire-limit: bind");
    return 1;
  }
  socklen_t len = sizeof la;
  getsockname(ls, reinterpret_cast<sockaddr*>(&la), &len);
  if (!portFile.empty()) std::ofstream(portFile) << ntohs(la.sin_port) << "\n";
  std::printf("wire-limit listening on 127.0.0.1:%d\n", ntohs(la.sin_port));
  std::fflush(stdout);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(serve, ls);  // one listener; each thread its own epoll
  for (auto& t : pool) t.join();
}
