package org.modelrunner.host;

import java.io.File;
import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * The class loader of one model version; the exit guard recognises model code by it, and the host makes it the
 * thread context class loader while model code runs (see Slot).
 *
 * <p>Native libraries: the JVM binds a native library file to the first class loader that loads it, so a
 * second loader (the next version, or the same version loaded again after a swap) loading the same file
 * fails with "already loaded in another classloader". {@link #findLibrary} therefore resolves
 * {@code System.loadLibrary(name)} in the bundle's {@code lib/native/<os>-<arch>/}, then {@code lib/native/},
 * and hands the JVM a copy of the file in a directory of this loader's own (the whole folder is copied, so
 * a library finds its sibling libraries through {@code $ORIGIN}). The copies are removed on {@link #close}.
 * The copy directory is under {@code -Dmodelrunner.nativeDir}, else {@code java.io.tmpdir}; it must allow
 * executable mappings (not a {@code noexec} mount). Copies left by a process that died are removed the
 * first time a later process copies a library.
 */
final class ModelLoader extends URLClassLoader {
    static { ClassLoader.registerAsParallelCapable(); }

    static final String COPY_PREFIX = "model-runner-native-";
    private static final long PID = ProcessHandle.current().pid();
    private static boolean swept;

    private final Path nativeRoot;             // <bundle>/lib/native, or null
    private final Object nativeLock = new Object();
    private final Map<String, String> resolved = new HashMap<>();   // library name -> absolute path of the copy
    private final Set<Path> copiedDirs = new LinkedHashSet<>();     // relative folders under nativeRoot
    private Path copies;                       // this loader's copy directory, created on first use
    private boolean closed;
    private volatile ModelOutput.Tag output;   // how the version's output lines are tagged (ModelOutput)

    ModelLoader(String name, URL[] urls, ClassLoader parent) { this(name, urls, parent, null); }

    /** {@code artifactDir}: the bundle folder whose {@code lib/native} holds native libraries (null: none). */
    ModelLoader(String name, URL[] urls, ClassLoader parent, Path artifactDir) {
        super(name, urls, parent);
        this.nativeRoot = artifactDir == null ? null : artifactDir.resolve("lib").resolve("native");
    }

    /** The tag of this version's output lines (ModelOutput); by default the loader's name. */
    ModelOutput.Tag output() {
        ModelOutput.Tag t = output;
        if (t == null) output = t = ModelOutput.tag(String.valueOf(getName()).replaceFirst("^model:", ""), null);
        return t;
    }

    void output(ModelOutput.Tag tag) { output = tag; }

    /** The folders searched for native libraries, relative to lib/native, most specific first. */
    static List<String> nativeFolders() {
        String os = os(), arch = arch();
        List<String> osNames = new ArrayList<>(List.of(os));
        if (os.equals("macos")) osNames.addAll(List.of("osx", "darwin"));
        List<String> archNames = new ArrayList<>(List.of(arch));
        if (arch.equals("x86_64")) archNames.addAll(List.of("amd64", "x64"));
        if (arch.equals("aarch64")) archNames.add("arm64");
        List<String> out = new ArrayList<>();
        for (String o : osNames) for (String a : archNames) out.add(o + "-" + a);
        out.add("");
        return out;
    }

    static String os() {
        String n = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        if (n.startsWith("linux")) return "linux";
        if (n.startsWith("mac") || n.startsWith("darwin")) return "macos";
        if (n.startsWith("windows")) return "windows";
        return n.replaceAll("[^a-z0-9]", "");
    }

    static String arch() {
        String a = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        switch (a) {
            case "amd64": case "x86_64": case "x64": return "x86_64";
            case "aarch64": case "arm64": return "aarch64";
            default: return a;
        }
    }

    /** Where this loader's copies are (null until a library was resolved); for tests and diagnostics. */
    Path nativeCopies() {
        synchronized (nativeLock) { return copies; }
    }

    @Override
    protected String findLibrary(String libname) {
        if (nativeRoot == null) return null;
        String file = System.mapLibraryName(libname);
        synchronized (nativeLock) {
            if (closed) return null;
            String done = resolved.get(libname);
            if (done != null) return done;
            for (String folder : nativeFolders()) {
                Path dir = folder.isEmpty() ? nativeRoot : nativeRoot.resolve(folder);
                if (!Files.isRegularFile(dir.resolve(file))) continue;
                try {
                    Path copy = copyFolder(Paths.get(folder)).resolve(file);
                    String path = copy.toAbsolutePath().toString();
                    resolved.put(libname, path);
                    return path;
                } catch (IOException e) {
                    // The JVM reports "no <name> in java.library.path"; say why the bundle's copy is missing.
                    throw new UnsatisfiedLinkError("cannot copy native library " + dir.resolve(file) + " to a per-version path under "
                            + copyBase() + " (set -Dmodelrunner.nativeDir to a writable, exec-allowed folder): " + e);
                }
            }
            return null;
        }
    }

    /** Copies the regular files of lib/native/{@code rel} into this loader's directory (once); returns the copy folder. */
    private Path copyFolder(Path rel) throws IOException {
        if (copies == null) {
            Path base = copyBase();
            Files.createDirectories(base);
            sweepDeadCopies(base);
            copies = Files.createTempDirectory(base, COPY_PREFIX + PID + "-");
        }
        Path target = rel.toString().isEmpty() ? copies : copies.resolve(rel);
        if (copiedDirs.add(rel)) {
            Files.createDirectories(target);
            Path src = rel.toString().isEmpty() ? nativeRoot : nativeRoot.resolve(rel);
            try (DirectoryStream<Path> files = Files.newDirectoryStream(src)) {
                for (Path f : files) {
                    if (Files.isRegularFile(f)) Files.copy(f, target.resolve(f.getFileName().toString()));
                }
            }
        }
        return target;
    }

    static Path copyBase() {
        String dir = System.getProperty("modelrunner.nativeDir");
        return Paths.get(dir == null || dir.isEmpty() ? System.getProperty("java.io.tmpdir") : dir);
    }

    /** Removes copy directories of processes that no longer run (a crash skips close), once per JVM. */
    private static void sweepDeadCopies(Path base) {
        synchronized (ModelLoader.class) {
            if (swept) return;
            swept = true;
        }
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(base, COPY_PREFIX + "*")) {
            for (Path d : dirs) {
                String rest = d.getFileName().toString().substring(COPY_PREFIX.length());
                int dash = rest.indexOf('-');
                try {
                    long pid = Long.parseLong(dash < 0 ? rest : rest.substring(0, dash));
                    if (pid != PID && ProcessHandle.of(pid).isEmpty()) deleteTree(d);
                } catch (NumberFormatException ignored) { /* not ours */ }
            }
        } catch (IOException | RuntimeException ignored) { /* best effort */ }
    }

    static void deleteTree(Path dir) {
        if (dir == null || !Files.exists(dir)) return;
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        } catch (IOException | RuntimeException ignored) { /* best effort: another user's folder, a race */ }
    }

    /**
     * Closes the JAR files and removes this loader's native copies. A library already loaded stays mapped (and
     * bound to this loader) until the loader is collected; removing its file does not affect it.
     */
    @Override
    public void close() throws IOException {
        try {
            super.close();
        } finally {
            Path dir;
            synchronized (nativeLock) {
                closed = true;
                dir = copies;
                resolved.clear();
            }
            deleteTree(dir);
        }
    }
}
