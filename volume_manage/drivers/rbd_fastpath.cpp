// The rbd driver's size, features and watchers of an image in one OSD read, without opening the image.
//
// Why C++: librados lists an object's watchers only in its C++ API (IoCtx::list_watchers,
// ObjectReadOperation::list_watchers); neither its C API nor the Python bindings (Ceph 16)
// have it, and librbd's python `Image.watchers_list` needs an open image: ~3 ms of client
// CPU each, two per adopted image (the listing's in-use check and the size step's).
// Built by `python -m volume_manage.drivers.rbd_fastpath --build` (scripts/setup.sh) and
// called through ctypes (volume_manage/drivers/rbd_fastpath.py); without it the driver
// opens the images, with the same answers.
#include <rados/librados.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <list>
#include <string>

namespace {

struct Connection {
  librados::Rados cluster;
  librados::IoCtx ioctx;
};

constexpr uint64_t NOSNAP = 0xfffffffffffffffeULL;  // CEPH_NOSNAP: the image, not a snapshot

uint64_t little_endian(const char *bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

}  // namespace

extern "C" {

// Bumped with any change of these functions' signatures: the Python side loads only the
// version it was written for (a stale build is ignored, not called wrongly).
int vm_rbd_fastpath_version() { return 1; }

// A connection to `pool` as `user` of `cluster_name`, `conf_file` read (empty: librados'
// default), then each `keys[i]` = `values[i]` set. 0, or a negative errno.
int vm_rbd_connect(const char *user, const char *cluster_name, const char *conf_file,
                   const char **keys, const char **values, int count, const char *pool,
                   void **out) {
  auto *connection = new Connection();
  std::string name = std::string("client.") + (user && *user ? user : "admin");
  int r = connection->cluster.init2(name.c_str(), cluster_name, 0);
  if (r == 0) {
    r = connection->cluster.conf_read_file(conf_file && *conf_file ? conf_file : nullptr);
  }
  for (int i = 0; r == 0 && i < count; ++i) {
    r = connection->cluster.conf_set(keys[i], values[i]);
  }
  if (r == 0) {
    r = connection->cluster.connect();
  }
  if (r == 0) {
    r = connection->cluster.ioctx_create(pool, connection->ioctx);
  }
  if (r < 0) {
    connection->cluster.shutdown();
    delete connection;
    return r;
  }
  *out = connection;
  return 0;
}

void vm_rbd_shutdown(void *handle) {
  auto *connection = static_cast<Connection *>(handle);
  connection->ioctx.close();
  connection->cluster.shutdown();
  delete connection;
}

// The header object `header`'s `rbd` class get_size and get_features (as a read-only open
// asks them) and the count of its watchers, in one read operation. 0, or a negative errno
// (-ENOENT: no such header).
int vm_rbd_header(void *handle, const char *header, uint64_t *size, uint64_t *features,
                  uint64_t *incompatible, uint32_t *watchers) {
  auto *connection = static_cast<Connection *>(handle);
  librados::ObjectReadOperation op;
  librados::bufferlist size_in, size_out, features_in, features_out;
  char snap[9];
  for (int i = 0; i < 8; ++i) snap[i] = static_cast<char>((NOSNAP >> (8 * i)) & 0xff);
  snap[8] = 1;  // get_features: read_only, as the driver's opens are
  size_in.append(snap, 8);
  features_in.append(snap, 9);
  int size_rval = 0, features_rval = 0, watch_rval = 0;
  std::list<obj_watch_t> listed;
  op.exec("rbd", "get_size", size_in, &size_out, &size_rval);
  op.exec("rbd", "get_features", features_in, &features_out, &features_rval);
  op.list_watchers(&listed, &watch_rval);
  int r = connection->ioctx.operate(header, &op, nullptr);
  if (r < 0) return r;
  if (size_rval < 0) return size_rval;
  if (features_rval < 0) return features_rval;
  if (watch_rval < 0) return watch_rval;
  // get_size: the order (1 byte), then the size; get_features: features, incompatible
  if (size_out.length() < 9 || features_out.length() < 16) return -EINVAL;
  *size = little_endian(size_out.c_str() + 1);
  *features = little_endian(features_out.c_str());
  *incompatible = little_endian(features_out.c_str() + 8);
  *watchers = static_cast<uint32_t>(listed.size());
  return 0;
}

}  // extern "C"
