package com.acme.nat;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;

/** The extract-from-JAR pattern of native Java libraries: copy the library out of this JAR, then System.load. */
final class Extract {
    private Extract() {}

    static String load(boolean fixedPath) {
        String arch = System.getProperty("os.arch");
        String resource = "/com/acme/nat/native/linux-" + ("amd64".equals(arch) ? "x86_64" : arch) + "/libacmescorer.so";
        try (InputStream in = Extract.class.getResourceAsStream(resource)) {
            if (in == null) throw new UnsatisfiedLinkError("no " + resource + " in the acme-native JAR");
            Path file;
            if (fixedPath) { // one path per process, extracted once: what some libraries do to save the copy
                Path dir = Paths.get(System.getProperty("java.io.tmpdir"), "acme-native-fixed-" + ProcessHandle.current().pid());
                Files.createDirectories(dir);
                file = dir.resolve("libacmescorer.so");
                if (!Files.exists(file)) Files.copy(in, file);
            } else { // a new file for each load: what most libraries do
                file = Files.createTempFile("libacmescorer-", ".so");
                file.toFile().deleteOnExit();
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
            }
            System.load(file.toAbsolutePath().toString());
            return file.toString();
        } catch (java.io.IOException e) {
            throw new UnsatisfiedLinkError("cannot extract " + resource + ": " + e);
        }
    }
}
