/* engine/sources.c: the main thread's part of the `files` and `paginate`
 * sources (engine/sources.h): expanding a files pattern into jobs before the
 * loop starts, and freeing a paginate spec. The loop thread's part is in
 * engine/files.c and engine/paginate.c. */
#include "engine/sources.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void paginate_spec_free(paginate_spec_t *p)
{
	free(p->url);
	free(p->cursor_param);
	json_path_free(p->cursor_path);
	json_path_free(p->items);
	free(p->emit);
	free(p->emit_var);
	memset(p, 0, sizeof(*p));
}

void files_list_free(files_list_t *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free((char *)l->jobs[i].key);
		free((char *)l->jobs[i].url);
	}
	free(l->jobs);
	l->jobs = NULL;
	l->n = 0;
}

/* A directory entry, and whether readdir said it is a regular file. */
typedef struct {
	char *name;
	bool is_reg;
} dir_entry_t;

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const dir_entry_t *)a)->name, ((const dir_entry_t *)b)->name);
}

/* The resolved directory of the last file added: the files of a directory
 * or a glob share a few directories, so realpath(3) (a readlink or lstat per
 * path component) runs once per directory, not once per file. */
typedef struct {
	char dir[PATH_MAX];  /* as the pattern spelled it */
	char real[PATH_MAX]; /* its realpath */
	bool valid;
} dir_cache_t;

/* abs = the absolute path of path, a file that is not a symbolic link:
 * its directory resolved (through dc), then its name. */
static int abs_of_file(dir_cache_t *dc, const char *path, char *abs)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	char dir[PATH_MAX];
	if (dlen >= sizeof(dir))
		return -ENAMETOOLONG;
	if (!slash)
		memcpy(dir, ".", 2);
	else if (dlen == 0)
		memcpy(dir, "/", 2);
	else {
		memcpy(dir, path, dlen);
		dir[dlen] = '\0';
	}
	if (!dc->valid || strcmp(dc->dir, dir) != 0) {
		dc->valid = false;
		if (!realpath(dir, dc->real))
			return -errno;
		memcpy(dc->dir, dir, strlen(dir) + 1);
		dc->valid = true;
	}
	size_t rlen = strlen(dc->real);
	bool root = rlen && dc->real[rlen - 1] == '/';
	if (snprintf(abs, PATH_MAX, "%s%s%s", dc->real, root ? "" : "/", name) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Adds path as a job when it is a regular file (symbolic links followed);
 * key is path without its first base_len bytes. is_reg: readdir's d_type
 * said so already, and the lstat is not made (a directory of 4,000 files:
 * 4,000 path lookups fewer before the first job). */
static int add_file(files_list_t *l, size_t *cap, dir_cache_t *dc, const char *path,
                    size_t base_len, bool is_reg)
{
	struct stat st;
	char abs[PATH_MAX];
	if (is_reg)
		st.st_mode = S_IFREG;
	else if (lstat(path, &st) != 0)
		return 0;
	if (S_ISLNK(st.st_mode)) { /* resolved as a whole: the link may point anywhere */
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			return 0; /* directories and the like are not documents */
		if (!realpath(path, abs))
			return -errno;
		l->links = 1; /* a file listed twice is possible: files_dedupe looks */
	} else if (!S_ISREG(st.st_mode)) {
		return 0;
	} else {
		int rc = abs_of_file(dc, path, abs);
		if (rc != 0)
			return rc;
	}
	if (l->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		store_job_t *j = realloc(l->jobs, ncap * sizeof(*j));
		if (!j)
			return -ENOMEM;
		l->jobs = j;
		*cap = ncap;
	}
	size_t ulen = strlen(FILES_URL_PREFIX) + strlen(abs) + 1;
	char *url = malloc(ulen), *key = strdup(path + base_len);
	if (!url || !key) {
		free(url);
		free(key);
		return -ENOMEM;
	}
	snprintf(url, ulen, "%s%s", FILES_URL_PREFIX, abs);
	l->jobs[l->n++] = (store_job_t){key, url};
	return 0;
}

/* The pattern's base: its leading directories without * ? [ in them. */
static size_t glob_base_len(const char *pattern)
{
	size_t meta = strcspn(pattern, "*?[");
	size_t base = 0;
	for (size_t i = 0; i < meta; i++)
		if (pattern[i] == '/')
			base = i + 1;
	return base;
}

static int expand_dir(const char *dir, files_list_t *out, size_t *cap, dir_cache_t *dc)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	dir_entry_t *names = NULL;
	size_t n = 0, ncap = 0;
	int rc = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n == ncap) {
			ncap = ncap ? ncap * 2 : 64;
			dir_entry_t *nn = realloc(names, ncap * sizeof(*nn));
			if (!nn) {
				rc = -ENOMEM;
				break;
			}
			names = nn;
		}
		names[n].is_reg = e->d_type == DT_REG; /* DT_UNKNOWN, DT_LNK: lstat */
		if (!(names[n].name = strdup(e->d_name)))
			rc = -ENOMEM;
		else
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_entry);
	size_t dlen = strlen(dir);
	bool slash = dlen && dir[dlen - 1] == '/';
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		if (rc == 0 && snprintf(path, sizeof(path), "%s%s%s", dir, slash ? "" : "/",
		                        names[i].name) >= (int)sizeof(path))
			rc = -ENAMETOOLONG;
		if (rc == 0)
			rc = add_file(out, cap, dc, path, dlen + !slash, names[i].is_reg);
		free(names[i].name);
	}
	free(names);
	return rc;
}

static int cmp_url_then_index(const void *a, const void *b, void *jobs)
{
	const store_job_t *j = jobs;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(j[x].url, j[y].url);
	return c ? c : (x > y) - (x < y);
}

/* Leaves out every later path of a file already listed (one URL); links
 * counts them. Called with links 1 when a file was a link (add_file); else,
 * the files of one directory (may_repeat false) have one path each. */
static int files_dedupe(files_list_t *l, bool may_repeat)
{
	may_repeat |= l->links != 0;
	l->links = 0;
	if (l->n < 2 || !may_repeat)
		return 0;
	size_t *ix = malloc(l->n * sizeof(*ix));
	bool *drop = calloc(l->n, sizeof(*drop));
	if (!ix || !drop) {
		free(ix);
		free(drop);
		return -ENOMEM;
	}
	for (size_t i = 0; i < l->n; i++)
		ix[i] = i;
	qsort_r(ix, l->n, sizeof(*ix), cmp_url_then_index, l->jobs);
	for (size_t i = 1; i < l->n; i++)
		drop[ix[i]] = strcmp(l->jobs[ix[i]].url, l->jobs[ix[i - 1]].url) == 0;
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (drop[i]) {
			free((char *)l->jobs[i].key);
			free((char *)l->jobs[i].url);
			l->links++;
		} else {
			l->jobs[n++] = l->jobs[i];
		}
	}
	l->n = n;
	free(ix);
	free(drop);
	return 0;
}

int files_expand(const char *pattern, files_list_t *out, char *err, size_t err_cap)
{
	memset(out, 0, sizeof(*out));
	size_t cap = 0;
	int rc = 0;
	struct stat st;
	dir_cache_t *dc = calloc(1, sizeof(*dc)); /* 8 KiB: not on the stack */
	if (!dc) {
		snprintf(err, err_cap, "%s: %s", pattern, strerror(ENOMEM));
		return -1;
	}
	bool dir = stat(pattern, &st) == 0 && S_ISDIR(st.st_mode);
	if (dir) {
		rc = expand_dir(pattern, out, &cap, dc);
	} else {
		glob_t g;
		int gr = glob(pattern, GLOB_ERR, NULL, &g);
		if (gr == GLOB_NOSPACE)
			rc = -ENOMEM;
		else if (gr == GLOB_ABORTED)
			rc = -EIO;
		size_t base = glob_base_len(pattern);
		for (size_t i = 0; gr == 0 && rc == 0 && i < g.gl_pathc; i++)
			rc = add_file(out, &cap, dc, g.gl_pathv[i], base, false); /* glob sorts them */
		if (gr == 0 || gr == GLOB_NOMATCH)
			globfree(&g);
	}
	free(dc);
	if (rc == 0) /* a glob's directories may be one by links (a/x, b/x with b -> a) */
		rc = files_dedupe(out, !dir);
	if (rc == 0 && out->n == 0) {
		snprintf(err, err_cap, "%s: no regular file matches", pattern);
		return -1;
	}
	if (rc != 0) {
		snprintf(err, err_cap, "%s: %s", pattern,
		         rc == -EIO ? "a directory cannot be read" : strerror(-rc));
		files_list_free(out);
		return -1;
	}
	return 0;
}
